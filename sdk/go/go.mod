module github.com/insien/orchestrator/sdk/go

go 1.26.4

require (
	github.com/coder/websocket v1.8.15
	github.com/google/uuid v1.6.0
	github.com/oapi-codegen/runtime v1.9.0
)

require github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
