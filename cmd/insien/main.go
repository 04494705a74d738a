// Command insien is the command-line client of the insien orchestrator: log in once, then create
// sandboxes, run commands and shells in them, copy files and follow their logs.
package main

import "os"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
