package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.uber.org/dig"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/clerkauth"
	"github.com/insien/orchestrator/internal/identity/users"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/providers"
	"github.com/insien/orchestrator/repositories"
)

// commandTimeout bounds one operator command (keys, pool), database and Redis round trips included.
const commandTimeout = 30 * time.Second

// keysCommand manages API keys from the command line, for machines without Clerk.
func keysCommand(g globalFlags, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "usage: orchestrator keys create|list|revoke ...\n")
		return 2
	}
	cfg, ok := loadConfig(g)
	if !ok {
		return 1
	}
	svc, stop, err := startKeyServices(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	f, err := parseKeyFlags(args[0], args[1:])
	if err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	switch args[0] {
	case "create":
		return createKey(ctx, svc, f)
	case "list":
		return listKeys(ctx, svc, f)
	case "revoke":
		return revokeKey(ctx, svc, f)
	}
	fmt.Fprintf(os.Stderr, "unknown keys command %q (create, list, revoke)\n", args[0])
	return 2
}

// keyServices are what the key commands use.
type keyServices struct {
	fx.In
	Keys  *apikeys.Service
	Users *users.Service
}

// startKeyServices builds the key and user services with the modules serve uses, but without
// the HTTP server, the runtime or any background work. stop closes Postgres and Redis.
func startKeyServices(cfg *config.Config) (svc keyServices, stop func(), err error) {
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg),
		config.Module,
		fx.Supply(zap.NewNop()),
		fx.Provide(providers.NewDB),
		fx.Provide(providers.NewRedis),
		fx.Invoke(closeOnStop),
		repositories.Module,
		clerkauth.Module,
		apikeys.Module,
		users.Module,
		fx.Populate(&svc),
	)
	if err := app.Err(); err != nil {
		// A bad URL reads as the provider's one line, not as Fx's dependency trace.
		return svc, nil, dig.RootCause(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(ctx); err != nil {
		return svc, nil, fmt.Errorf("start the key services: %w", err)
	}
	return svc, func() { stopApp(app) }, nil
}

// closeOnStop closes the clients when the command's app stops: Redis first, Postgres last.
func closeOnStop(lc fx.Lifecycle, db *bun.DB, rdb *redis.Client) {
	lc.Append(fx.StopHook(db.Close))
	lc.Append(fx.StopHook(rdb.Close))
}

func stopApp(app *fx.App) {
	ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	_ = app.Stop(ctx)
}

// keyFlags are the flags of every key command; each uses the ones it needs.
type keyFlags struct {
	email, name, scopes string
	expiresIn           time.Duration
	args                []string
}

// parseKeyFlags reads the flags of `keys <command>`; the flag package reports errors itself.
func parseKeyFlags(command string, args []string) (keyFlags, error) {
	var f keyFlags
	fs := flag.NewFlagSet("keys "+command, flag.ContinueOnError)
	fs.StringVar(&f.email, "email", "", "the user's email")
	fs.StringVar(&f.name, "name", "", "a name for the key")
	fs.StringVar(&f.scopes, "scopes", "", "comma-separated scopes (default: all)")
	fs.DurationVar(&f.expiresIn, "expires-in", 0, "lifetime of the key, e.g. 720h (default: no expiry)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.args = fs.Args()
	return f, nil
}

// createInput is the key request the flags describe.
func (f keyFlags) createInput() apikeys.CreateInput {
	in := apikeys.CreateInput{Name: f.name}
	if f.scopes != "" {
		in.Scopes = strings.Split(f.scopes, ",")
	}
	if f.expiresIn != 0 {
		at := time.Now().Add(f.expiresIn)
		in.ExpiresAt = &at
	}
	return in
}

// createKey issues a key for the local user of --email, creating the user if needed, and prints
// the secret alone on stdout.
func createKey(ctx context.Context, svc keyServices, f keyFlags) int {
	if f.email == "" || f.name == "" {
		fmt.Fprintln(os.Stderr, "usage: orchestrator keys create --email EMAIL --name NAME [--scopes s1,s2] [--expires-in DURATION]")
		return 2
	}
	in := f.createInput()
	// Refuse bad input before creating anything, the user included.
	if _, err := apikeys.Validate(in); err != nil {
		return fail(err)
	}
	u, err := svc.Users.EnsureLocal(ctx, f.email)
	if err != nil {
		return fail(err)
	}
	issued, err := svc.Keys.Create(ctx, u.ID, in)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "created key %s (%s) for %s with scopes %s; it is shown only once:\n",
		issued.Key.ID, issued.Key.Name, f.email, strings.Join(issued.Key.Scopes, ","))
	fmt.Println(issued.Secret)
	return 0
}

// listKeys prints the keys of the local user of --email, masked.
func listKeys(ctx context.Context, svc keyServices, f keyFlags) int {
	if f.email == "" {
		fmt.Fprintln(os.Stderr, "usage: orchestrator keys list --email EMAIL")
		return 2
	}
	u, err := svc.Users.LocalByEmail(ctx, f.email)
	if err != nil {
		return fail(err)
	}
	keys, err := svc.Keys.List(ctx, u.ID)
	if err != nil {
		return fail(err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tKEY\tSCOPES\tCREATED\tSTATE")
	now := time.Now()
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%s…%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.LastFour,
			strings.Join(k.Scopes, ","), k.CreatedAt.Format(time.RFC3339), k.State(now))
	}
	_ = w.Flush()
	return 0
}

// revokeKey revokes the key with the given id, whoever owns it.
func revokeKey(ctx context.Context, svc keyServices, f keyFlags) int {
	if len(f.args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: orchestrator keys revoke ID")
		return 2
	}
	id, err := uuid.Parse(f.args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "keys revoke: not a key id:", f.args[0])
		return 2
	}
	if err := svc.Keys.RevokeByID(ctx, id); err != nil {
		return fail(err)
	}
	fmt.Println("revoked", id)
	return 0
}

// fail reports err in one line, an API error by its message, and gives the exit code 1.
func fail(err error) int {
	if apiErr, ok := apierror.As(err); ok {
		fmt.Fprintln(os.Stderr, "error:", apiErr.Message)
	} else if errors.Is(err, repositories.ErrNotFound) {
		fmt.Fprintln(os.Stderr, "error: not found")
	} else {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	return 1
}
