package config

import "go.uber.org/fx"

// Module hands each provider its own section of the *Config the application supplies
// (fx.Supply(cfg)), so a provider depends on what it reads and nothing more.
var Module = fx.Module("config",
	fx.Provide(splitSections),
)

// sections is every section of Config as a separate value in the graph.
type sections struct {
	fx.Out
	App       App
	HTTP      HTTP
	Log       Log
	Database  Database
	Redis     Redis
	Health    Health
	Clerk     Clerk
	Auth      Auth
	RateLimit RateLimit
	Secrets   Secrets
	Runtime   Runtime
	Sandbox   Sandbox
	Preview   Preview
	Network   Network
	Volumes   Volumes
	Templates Templates
	Metrics   Metrics
	Tracing   Tracing
	Events    Events
	Webhooks  Webhooks
}

func splitSections(c *Config) sections {
	return sections{
		App: c.App, HTTP: c.HTTP, Log: c.Log, Database: c.Database, Redis: c.Redis, Health: c.Health,
		Clerk: c.Clerk, Auth: c.Auth, RateLimit: c.RateLimit, Secrets: c.Secrets, Runtime: c.Runtime,
		Sandbox: c.Sandbox, Preview: c.Preview, Network: c.Network, Volumes: c.Volumes, Templates: c.Templates,
		Metrics: c.Metrics, Tracing: c.Tracing, Events: c.Events, Webhooks: c.Webhooks,
	}
}
