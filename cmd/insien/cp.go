package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/insien/orchestrator/sdk/go/client"
)

func (c *cli) cpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cp <src> <dst>",
		Short: "Copy a file between this machine and a sandbox, either way",
		Long: `cp copies one file, byte for byte, into a sandbox or out of one. A sandbox's file is written
<id>:/absolute/path; - is standard input (as the source) or standard output (as the destination).
A destination that is a directory (or ends with /) receives the file under its own name. A file
copied in keeps its permission bits.`,
		Example: `  insien cp ./script.sh $id:/tmp/script.sh
  insien cp $id:/tmp/out.tar.gz .
  tar cz src | insien cp - $id:/tmp/src.tar.gz
  insien cp $id:/etc/os-release -`,
		Args: exactArgs(2, "a source and a destination"),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := parseLocation(args[0]), parseLocation(args[1])
			switch {
			case src.sandbox != "" && dst.sandbox != "":
				return usagef("copy between two sandboxes in two steps, through this machine")
			case src.sandbox == "" && dst.sandbox == "":
				return usagef("one side must be a sandbox's file, written <id>:/path")
			}
			for _, l := range []location{src, dst} {
				if l.sandbox != "" && !cleanAbsolute(l.path) {
					return usagef("a sandbox's path is absolute and clean (no . or .. parts): %s:%s", l.sandbox, l.path)
				}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if dst.sandbox != "" {
				return c.copyIn(cmd, cl.Sandboxes.Connect(dst.sandbox), src.path, dst.path)
			}
			return c.copyOut(cmd, cl.Sandboxes.Connect(src.sandbox), src.path, dst.path)
		},
	}
}

// location is one side of cp: a sandbox's file (sandbox set) or a local path, "-" for stdio.
type location struct{ sandbox, path string }

// parseLocation reads "<id>:/path" as a sandbox's file and anything else as local, as scp does:
// a colon after a slash (./a:b) is part of a local name.
func parseLocation(arg string) location {
	id, p, ok := strings.Cut(arg, ":")
	if !ok || id == "" || strings.ContainsRune(id, '/') {
		return location{path: arg}
	}
	return location{sandbox: id, path: p}
}

// cleanAbsolute reports whether p is a path the API takes (absolute, path.Clean leaves it
// unchanged), allowing a trailing slash that means "into this directory".
func cleanAbsolute(p string) bool {
	trimmed := strings.TrimSuffix(p, "/")
	if trimmed == "" {
		return p == "/"
	}
	return path.IsAbs(trimmed) && path.Clean(trimmed) == trimmed
}

// copyIn writes a local file (or stdin) to the sandbox; into an existing directory, under the
// file's own name.
func (c *cli) copyIn(cmd *cobra.Command, sb *client.Sandbox, local, remote string) error {
	open := func() (io.ReadCloser, fs.FileMode, error) {
		if local == "-" {
			return io.NopCloser(c.stdin), 0, nil
		}
		f, err := os.Open(local)
		if err != nil {
			return nil, 0, fmt.Errorf("opening %s: %w", local, err)
		}
		info, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("reading %s: %w", local, err)
		}
		if !info.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("%s is not a regular file (cp copies one file)", local)
		}
		return f, info.Mode().Perm(), nil
	}
	if strings.HasSuffix(remote, "/") {
		if local == "-" {
			return usagef("standard input has no name: give the sandbox's file a name, not %s", remote)
		}
		remote += filepath.Base(local)
	}
	write := func(remote string) error {
		r, mode, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		spin := c.startSpinner("Copying to " + sb.ID + ":" + remote)
		defer spin.Stop()
		_, err = sb.Files.WriteMode(cmd.Context(), remote, spin.countBytes(r), mode)
		return err
	}
	err := write(remote)
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.Code == "path_is_directory" && local != "-" {
		remote = path.Join(remote, filepath.Base(local))
		err = write(remote)
	}
	if err != nil {
		return fmt.Errorf("copying %s to %s:%s: %w", local, sb.ID, remote, err)
	}
	return nil
}

// copyOut reads the sandbox's file into a local file (or stdout); into an existing directory,
// under the file's own name. A failed copy leaves no partial file.
func (c *cli) copyOut(cmd *cobra.Command, sb *client.Sandbox, remote, local string) error {
	r, err := sb.Files.Read(cmd.Context(), remote)
	if err != nil {
		return fmt.Errorf("copying %s:%s: %w", sb.ID, remote, err)
	}
	defer r.Close()
	if local == "-" {
		if _, err := io.Copy(c.stdout, r); err != nil {
			return fmt.Errorf("copying %s:%s to standard output: %w", sb.ID, remote, err)
		}
		return nil
	}
	if info, err := os.Stat(local); strings.HasSuffix(local, string(filepath.Separator)) || err == nil && info.IsDir() {
		local = filepath.Join(local, path.Base(remote))
	}
	f, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return fmt.Errorf("creating %s: %w", local, err)
	}
	spin := c.startSpinner("Copying " + sb.ID + ":" + remote)
	_, err = io.Copy(f, spin.countBytes(r))
	spin.Stop()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(local)
		return fmt.Errorf("copying %s:%s to %s: %w", sb.ID, remote, local, err)
	}
	return nil
}
