package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/insien/orchestrator/sdk/go/api"
	"github.com/insien/orchestrator/sdk/go/client"
)

// keysNote is said wherever keys are described: the API manages keys for a person, not for a key.
const keysNote = `Keys are managed with a Clerk session: pass a session token (what your front end gets from
Clerk) with --api-key or INSIEN_API_KEY. An API key is refused here (session_required).`

func (c *cli) keysCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys (needs a Clerk session token)",
		Long:  "keys manages your API keys.\n\n" + keysNote,
	})
	cmd.AddCommand(c.keysCreate(), c.keysList(), c.keysRevoke())
	return cmd
}

func (c *cli) keysCreate() *cobra.Command {
	var (
		name, expiresIn string
		scopes          []string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create an API key; the key is printed once, on stdout",
		Long:  "create makes an API key and prints it alone on stdout (its id, name and scopes go to stderr); it is never shown again.\n\n" + keysNote,
		Example: `  insien keys create --api-key "$CLERK_SESSION" --name laptop
  insien keys create --name ci --scope sandboxes:read --expires-in 720h`,
		Args: exactArgs(0, "no arguments (the name is --name)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usagef("--name is required")
			}
			var opts []client.KeyOption
			if len(scopes) > 0 {
				opts = append(opts, client.WithScopes(scopes...))
			}
			if expiresIn != "" {
				d, err := time.ParseDuration(expiresIn)
				if err != nil || d <= 0 {
					return usagef("--expires-in: %q is not a positive duration (e.g. 720h)", expiresIn)
				}
				opts = append(opts, client.WithExpiry(time.Now().Add(d)))
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			key, err := cl.Keys.Create(cmd.Context(), name, opts...)
			if err != nil {
				return fmt.Errorf("creating the key: %w", err)
			}
			if c.json {
				return c.printJSON(key)
			}
			fmt.Fprintln(c.stdout, deref(key.Key))
			fmt.Fprintf(c.stderr, "Created key %q (id %s, scopes %s); store it now: it is not shown again\n",
				deref(key.Name), deref(key.Id).String(), strings.Join(deref(key.Scopes), ","))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "what the key is for (required)")
	f.StringSliceVar(&scopes, "scope", nil, "sandboxes:read or sandboxes:write (repeatable; default both)")
	f.StringVar(&expiresIn, "expires-in", "", "make the key stop working after this long, e.g. 720h (default never)")
	return cmd
}

func (c *cli) keysList() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List your API keys (masked), newest first",
		Long:    "ls lists your API keys, masked: their prefix and last four characters.\n\n" + keysNote,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			keys, err := cl.Keys.List(cmd.Context())
			if err != nil {
				return fmt.Errorf("listing keys: %w", err)
			}
			if c.json {
				return c.printJSON(keys)
			}
			rows := make([][]string, 0, len(keys))
			for _, k := range keys {
				lastUsed := "never"
				if k.LastUsedAt != nil {
					lastUsed = ago(*k.LastUsedAt)
				}
				rows = append(rows, []string{deref(k.Id).String(), deref(k.Name), deref(k.Prefix) + "…" + deref(k.LastFour),
					strings.Join(deref(k.Scopes), ","), keyState(k), ago(deref(k.CreatedAt)), lastUsed})
			}
			return c.table([]string{"ID", "NAME", "KEY", "SCOPES", "STATE", "CREATED", "LAST USED"}, rows)
		},
	}
}

// keyState is active, revoked, expired, or "expires in 3d".
func keyState(k api.APIKey) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt == nil:
		return "active"
	case k.ExpiresAt.Before(time.Now()):
		return "expired"
	default:
		return "expires " + until(*k.ExpiresAt)
	}
}

func (c *cli) keysRevoke() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <id>...",
		Short: "Revoke API keys: they stop working at once",
		Long:  "revoke makes keys stop working at once; revoking a revoked key is not an error.\n\n" + keysNote,
		Args:  minArgs(1, "at least one key id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			revoked := []string{}
			for _, id := range args {
				if err := cl.Keys.Revoke(cmd.Context(), id); err != nil {
					return fmt.Errorf("revoking key %s: %w", id, err)
				}
				revoked = append(revoked, id)
				if !c.json {
					fmt.Fprintf(c.stdout, "%s\n", id)
				}
			}
			if c.json {
				return c.printJSON(map[string]any{"revoked": revoked})
			}
			return nil
		},
	}
}

// deref is *p, or T's zero value for nil: the generated types are all pointers.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
