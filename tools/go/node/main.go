// Command node bundles the node binaries a real single-node cluster needs beside the kube wrapper
// (which has etcd, kube-apiserver and kube-controller-manager): `node kubelet ...`,
// `node kube-scheduler ...` and `node kube-proxy ...` (busybox style: chosen by the name the binary is
// invoked as, else by the first argument).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/cli"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var commands = map[string]bool{"kubelet": true, "kube-scheduler": true, "kube-proxy": true}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args
	if !commands[name] && len(os.Args) > 1 {
		// Invoked under another name (e.g. the versioned cache file): the first argument chooses.
		name, args = os.Args[1], os.Args[1:]
	}
	os.Args = args
	switch name {
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	default:
		fmt.Fprintln(os.Stderr, "usage: node kubelet|kube-scheduler|kube-proxy [flags]")
		os.Exit(2)
	}
}
