// The upstream kubectl of 1.33, which has no cmd.GetLogVerbosity yet (1.34 added it).
// build.sh lays this file over the shared tests/controlplane/cmd/kubectl/main.go for 1.33.
package main

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
