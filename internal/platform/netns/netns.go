// Package netns runs code inside another network namespace (a sandbox's, or the one the
// orchestrator's egress leaves from) without moving the rest of the process there.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread inside the network namespace ns (an open /proc/PID/ns/net or
// /run/netns/NAME). Sockets and netlink connections belong to the namespace they were made in for
// life, so only their making needs it: fn makes them and returns, and they are used from any
// goroutine afterwards. The thread locks, enters, and exits without unlocking, which makes the Go
// runtime discard it instead of handing a thread in a foreign namespace to other goroutines.
func Do(ns *os.File, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter the network namespace: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// DoPath is Do for the namespace at path.
func DoPath(path string, fn func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open the network namespace: %w", err)
	}
	defer ns.Close()
	return Do(ns, fn)
}
