// Command pause is the sandbox ("pause") container of the test node's Pods: it holds the Pod's
// namespaces open, reaps orphans (it is PID 1 when the Pod shares its process namespace) and exits
// on SIGINT/SIGTERM. Built here because the node reaches no image registry; it does what
// kubernetes/build/pause/linux/pause.c does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
