// Package orchestrator embeds the documents that live at the repository root, so the binary
// serves its OpenAPI description.
package orchestrator

import _ "embed"

// OpenAPI is openapi.yaml: the contract of every endpoint.
//
//go:embed openapi.yaml
var OpenAPI []byte
