package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/insien/orchestrator/sdk/go/client"
)

func (c *cli) loginCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Store an API key (and endpoint) for later commands",
		Long: `login checks an API key against the API and stores it, with the endpoint, in the user's config
directory (` + "`insien/config.json`" + ` under $XDG_CONFIG_HOME or ~/.config on Linux), readable by the user
only (0600). The key comes from --api-key, else from standard input when it is not a terminal, else
from a prompt that does not echo it.`,
		Example: `  insien login                                  # prompts for the key
  insien login --api-url https://api.example.com
  echo "$KEY" | insien login`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := c.readKey()
			if err != nil {
				return err
			}
			url := first(c.apiURL, os.Getenv("INSIEN_API_URL"))
			if url == "" {
				stored, err := loadLogin()
				if err != nil {
					return err
				}
				url = stored.APIURL
			}
			c.apiKey, c.apiURL = key, url
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := verifyKey(cmd, cl); err != nil {
				return err
			}
			path, err := saveLogin(storedLogin{APIKey: key, APIURL: url})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "Logged in; the key is stored in %s\n", path)
			return nil
		},
	}
}

// readKey takes the key from --api-key, a piped standard input, or a prompt without echo.
func (c *cli) readKey() (string, error) {
	if c.apiKey != "" {
		return c.apiKey, nil
	}
	var key string
	if fd, tty := isTerminal(c.stdin); tty {
		fmt.Fprint(c.stderr, "API key: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the key: %w", err)
		}
		key = string(b)
	} else {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the key from standard input: %w", err)
		}
		key = line
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", usagef("no API key given (--api-key, standard input or the prompt)")
	}
	return key, nil
}

// verifyKey asks the API for one sandbox: a key it refuses is not stored. A key without the
// sandboxes:read scope (403) is still a valid key.
func verifyKey(cmd *cobra.Command, cl *client.Client) error {
	for _, err := range cl.Sandboxes.List(cmd.Context(), client.ListSandboxesOptions{Limit: 1}) {
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == 403 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("checking the key: %w", err)
		}
		break
	}
	return nil
}

func (c *cli) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the stored API key",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			path, existed, err := removeLogin()
			if err != nil {
				return err
			}
			if existed {
				fmt.Fprintf(c.stderr, "Removed %s\n", path)
			} else {
				fmt.Fprintln(c.stderr, "Not logged in")
			}
			return nil
		},
	}
}
