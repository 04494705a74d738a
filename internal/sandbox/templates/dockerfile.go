package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// fromLine is a FROM instruction: FROM [--flag=...]... image [AS stage].
var fromLine = regexp.MustCompile(`(?i)^(\s*FROM\s+(?:--\S+\s+)*)(\S+)((?:\s+AS\s+(\S+))?\s*)$`)

// rewriteFrom checks every FROM of a Dockerfile and points it at an image the engine has: an
// earlier stage, scratch, and allowed images stay; anything else goes through resolve (one of
// the caller's templates → its image), whose error ends the check.
func rewriteFrom(dockerfile string, allowed []string, resolve func(ref string) (string, error)) (string, error) {
	var stages []string
	froms := 0
	lines := strings.Split(dockerfile, "\n")
	for i, line := range lines {
		m := fromLine.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		froms++
		ref := m[2]
		switch {
		case strings.EqualFold(ref, "scratch"), slices.Contains(allowed, ref),
			slices.ContainsFunc(stages, func(s string) bool { return strings.EqualFold(s, ref) }):
		default:
			image, err := resolve(ref)
			if err != nil {
				return "", err
			}
			lines[i] = m[1] + image + m[3]
		}
		if m[4] != "" {
			stages = append(stages, m[4])
		}
	}
	if froms == 0 {
		return "", errNoFrom
	}
	return strings.Join(lines, "\n"), nil
}

// contextHash identifies a build by what it builds from: the Dockerfile as it will run and the
// files, names and contents.
func contextHash(dockerfile string, files map[string][]byte) string {
	h := sha256.New()
	write := func(s []byte) {
		var n [8]byte
		for i, l := 0, len(s); i < 8; i, l = i+1, l>>8 {
			n[i] = byte(l)
		}
		h.Write(n[:])
		h.Write(s)
	}
	write([]byte(dockerfile))
	for _, name := range slices.Sorted(maps.Keys(files)) {
		write([]byte(name))
		write(files[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}
