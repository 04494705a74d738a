package kubernetes

import "github.com/insien/orchestrator/internal/runtimes/shell"

// NewStarter exposes the driver's shell.Starter, so that tests can drive exec streams directly.
func NewStarter(rt *Runtime) shell.Starter { return starter{rt} }

// SandboxContainer is the name of a sandbox Pod's one container.
const SandboxContainer = sandboxContainer
