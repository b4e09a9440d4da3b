module github.com/eipsegment-operator/eipsegment-operator/tests/argocd

go 1.24.0

require github.com/yuin/gopher-lua v1.1.2
