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
	"go.uber.org/zap"

	"github.com/insien/orchestrator/internal/identity/apikeys"
	"github.com/insien/orchestrator/internal/identity/users"
	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/providers"
	"github.com/insien/orchestrator/repositories"
)

// keysCommand manages API keys from the command line, for machines without Clerk.
func keysCommand(g globalFlags, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "usage: orchestrator keys create|list|revoke ...\n")
		return 2
	}
	cfg, db, ok := openDB(g)
	if !ok {
		return 1
	}
	defer db.Close()
	rdb, err := providers.NewRedis(cfg.Redis)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rdb.Close()
	userRepo := repositories.NewUsers(db)
	svc := apikeys.NewService(db, repositories.NewAPIKeys(db), userRepo, rdb, cfg.Auth, zap.NewNop())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	email := fs.String("email", "", "the user's email")
	name := fs.String("name", "", "a name for the key")
	scopes := fs.String("scopes", "", "comma-separated scopes (default: all)")
	expiresIn := fs.Duration("expires-in", 0, "lifetime of the key, e.g. 720h (default: no expiry)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}

	switch args[0] {
	case "create":
		if *email == "" || *name == "" {
			fmt.Fprintln(os.Stderr, "usage: orchestrator keys create --email EMAIL --name NAME [--scopes s1,s2] [--expires-in DURATION]")
			return 2
		}
		in := apikeys.CreateInput{Name: *name}
		if *scopes != "" {
			in.Scopes = strings.Split(*scopes, ",")
		}
		if *expiresIn != 0 {
			at := time.Now().Add(*expiresIn)
			in.ExpiresAt = &at
		}
		// Refuse bad input before creating anything, the user included.
		if _, err := apikeys.Validate(in); err != nil {
			return fail(err)
		}
		u, err := users.EnsureLocalUser(ctx, userRepo, *email)
		if err != nil {
			return fail(err)
		}
		issued, err := svc.Create(ctx, u.ID, in)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "created key %s (%s) for %s with scopes %s; it is shown only once:\n",
			issued.Key.ID, issued.Key.Name, *email, strings.Join(issued.Key.Scopes, ","))
		fmt.Println(issued.Secret)
	case "list":
		if *email == "" {
			fmt.Fprintln(os.Stderr, "usage: orchestrator keys list --email EMAIL")
			return 2
		}
		u, err := userRepo.LocalByEmail(ctx, *email)
		if err != nil {
			return fail(err)
		}
		keys, err := svc.List(ctx, u.ID)
		if err != nil {
			return fail(err)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tKEY\tSCOPES\tCREATED\tSTATE")
		for _, k := range keys {
			state := "active"
			if k.RevokedAt != nil {
				state = "revoked"
			} else if !k.Active(time.Now()) {
				state = "expired"
			}
			fmt.Fprintf(w, "%s\t%s\t%s…%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.LastFour,
				strings.Join(k.Scopes, ","), k.CreatedAt.Format(time.RFC3339), state)
		}
		_ = w.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			fmt.Fprintln(os.Stderr, "usage: orchestrator keys revoke ID")
			return 2
		}
		id, err := uuid.Parse(fs.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "keys revoke: not a key id:", fs.Arg(0))
			return 2
		}
		key, err := repositories.NewAPIKeys(db).ByID(ctx, id)
		if err != nil {
			return fail(err)
		}
		if err := svc.Revoke(ctx, key.UserID, id); err != nil {
			return fail(err)
		}
		fmt.Println("revoked", id)
	default:
		fmt.Fprintf(os.Stderr, "unknown keys command %q (create, list, revoke)\n", args[0])
		return 2
	}
	return 0
}

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
