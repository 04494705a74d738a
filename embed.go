// Package orchestrator embeds the documents that live at the repository root, so the binary
// serves its OpenAPI description and can print its documented configuration.
package orchestrator

import _ "embed"

// OpenAPI is openapi.yaml: the contract of every endpoint.
//
//go:embed openapi.yaml
var OpenAPI []byte

// ConfigYAML is config.yaml: every configuration key with its default.
//
//go:embed config.yaml
var ConfigYAML []byte
