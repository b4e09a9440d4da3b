module github.com/eipsegment-operator/eipsegment-operator/tests/node/pause

go 1.24
