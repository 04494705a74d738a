// Command orchestrator runs the sandbox orchestrator API and its operator commands.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	global, rest, err := parseGlobal(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	command := "serve"
	if len(rest) > 0 {
		command, rest = rest[0], rest[1:]
	}
	switch command {
	case "serve":
		return serve(global)
	case "migrate":
		return migrateCommand(global, rest)
	case "keys":
		return keysCommand(global, rest)
	case "pool":
		return poolCommand(global, rest)
	case "version":
		fmt.Println(version)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", command, usage)
	return 2
}

const usage = `usage: orchestrator [--config FILE] [command]

commands:
  serve                       run the API (default)
  migrate up|down|status      apply, roll back the last group, or list migrations
  migrate create NAME         write an empty migration pair into ./migrations
  keys create --email E --name N [--scopes s1,s2] [--expires-in 720h]
                              create an API key (and a local user for an unknown email)
  keys list --email E         list a local user's keys (masked)
  keys revoke ID              revoke a key
  pool status                 each warm pool's target, ready and starting members, last error
  version                     print the version
`
