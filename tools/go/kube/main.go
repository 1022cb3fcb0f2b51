// Command kube bundles the control-plane binaries the test harness needs:
// `kube kube-apiserver ...` and `kube etcd ...` (busybox style: chosen by the name the binary is
// invoked as, else by the first argument).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args
	if name != "kube-apiserver" && name != "etcd" && len(os.Args) > 1 {
		// Invoked under another name (e.g. the versioned cache file): the first argument chooses.
		name, args = os.Args[1], os.Args[1:]
	}
	switch name {
	case "kube-apiserver":
		os.Args = args
		os.Exit(cli.Run(app.NewAPIServerCommand()))
	case "etcd":
		etcdmain.Main(args)
	default:
		fmt.Fprintln(os.Stderr, "usage: kube kube-apiserver|etcd [flags]")
		os.Exit(2)
	}
}
