// The upstream kubelet of 1.33, whose NewKubeletCommand takes no context yet (1.34 added it).
// build.sh lays this file over the shared tests/controlplane/cmd/kubelet/main.go for 1.33.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand()))
}
