// Package api is the orchestrator's wire types and low-level HTTP client, generated from the
// repository's openapi.yaml by oapi-codegen (api.gen.go: never edit it by hand). One method per
// operation, named by its operationId (CreateSandbox, ExecCommand, ListEvents, …).
package api

//go:generate go -C ../../.. tool oapi-codegen -config sdk/go/api/oapi-codegen.yaml -o sdk/go/api/api.gen.go openapi.yaml
