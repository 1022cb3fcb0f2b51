// Command kube bundles the control-plane binaries the test harness needs:
// `kube kube-apiserver ...`, `kube kube-controller-manager ...` and `kube etcd ...` (busybox style:
// chosen by the name the binary is invoked as, else by the first argument).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

var commands = map[string]bool{"kube-apiserver": true, "kube-controller-manager": true, "etcd": true}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args
	if !commands[name] && len(os.Args) > 1 {
		// Invoked under another name (e.g. the versioned cache file): the first argument chooses.
		name, args = os.Args[1], os.Args[1:]
	}
	switch name {
	case "kube-apiserver":
		os.Args = args
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Args = args
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "etcd":
		etcdmain.Main(args)
	default:
		fmt.Fprintln(os.Stderr, "usage: kube kube-apiserver|kube-controller-manager|etcd [flags]")
		os.Exit(2)
	}
}
