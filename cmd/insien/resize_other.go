//go:build !unix

package main

// watchResize does nothing where there is no SIGWINCH: the remote terminal keeps its first size.
func watchResize(int, func(rows, cols int)) (stop func()) { return func() {} }
