package config

import "go.uber.org/fx"

// Module supplies the loaded configuration and one value per section, so each provider depends
// only on its own section.
func Module(cfg *Config) fx.Option {
	return fx.Module("config",
		fx.Supply(cfg),
		fx.Provide(
			func(c *Config) App { return c.App },
			func(c *Config) HTTP { return c.HTTP },
			func(c *Config) Log { return c.Log },
			func(c *Config) Database { return c.Database },
			func(c *Config) Redis { return c.Redis },
			func(c *Config) Health { return c.Health },
			func(c *Config) Clerk { return c.Clerk },
			func(c *Config) Auth { return c.Auth },
			func(c *Config) RateLimit { return c.RateLimit },
			func(c *Config) Secrets { return c.Secrets },
			func(c *Config) Runtime { return c.Runtime },
			func(c *Config) Sandbox { return c.Sandbox },
		),
	)
}
