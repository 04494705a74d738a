package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// storedLogin is what `insien login` keeps in the user's config directory, so later commands need
// neither a flag nor the environment.
type storedLogin struct {
	APIKey string `json:"api_key"`
	APIURL string `json:"api_url,omitempty"`
}

// configPath is the stored login's file: os.UserConfigDir()/insien/config.json
// ($XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application Support on macOS).
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory: %w", err)
	}
	return filepath.Join(dir, "insien", "config.json"), nil
}

// loadLogin reads the stored login; no file is an empty login, not an error.
func loadLogin() (storedLogin, error) {
	var l storedLogin
	path, err := configPath()
	if err != nil {
		return l, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("reading the stored login: %w", err)
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return l, fmt.Errorf("reading the stored login %s: %w (run `insien login` again)", path, err)
	}
	return l, nil
}

// saveLogin writes the login readable by its owner only (0600, in a 0700 directory), replacing
// any earlier one atomically so a crash never leaves half a key. It returns the file's path.
func saveLogin(l storedLogin) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding the login: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json") // CreateTemp makes it 0600
	if err != nil {
		return "", fmt.Errorf("writing the login: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("restricting %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing the login: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing the login: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("storing the login in %s: %w", path, err)
	}
	return path, nil
}

// removeLogin forgets the stored login; it reports whether there was one.
func removeLogin() (string, bool, error) {
	path, err := configPath()
	if err != nil {
		return "", false, err
	}
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, false, nil
	}
	if err != nil {
		return path, false, fmt.Errorf("removing the stored login: %w", err)
	}
	return path, true, nil
}
