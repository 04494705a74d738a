package lifecycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
)

// fingerprint is a SHA-256 of the request as the caller sent it (before defaults), in a canonical
// form: field order, map order and absent-versus-empty lists do not matter. Env values are left
// out so the digest stored beside the sealed env cannot be used to guess them; a replay compares
// them by opening the first sandbox's sealed env instead (sameEnv).
func (in CreateInput) fingerprint() []byte {
	str := func(v string) *string { return &v }
	var cpu, memory, timeout, autoExtend *string
	if in.CPU != nil {
		cpu = str(strconv.FormatFloat(*in.CPU, 'g', -1, 64))
	}
	if in.MemoryMB != nil {
		memory = str(strconv.FormatInt(*in.MemoryMB, 10))
	}
	if in.TimeoutSeconds != nil {
		timeout = str(strconv.Itoa(*in.TimeoutSeconds))
	}
	if in.AutoExtend != nil {
		autoExtend = str(strconv.FormatBool(*in.AutoExtend))
	}
	envNames := slices.Sorted(maps.Keys(in.Env))
	command := in.Command
	if command == nil {
		command = []string{}
	}
	metadata := in.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	canonical, err := json.Marshal(struct {
		Image      string            `json:"image"`
		Command    []string          `json:"command"`
		EnvNames   []string          `json:"env_names"`
		Metadata   map[string]string `json:"metadata"` // encoding/json sorts map keys
		Timeout    *string           `json:"timeout_seconds"`
		CPU        *string           `json:"cpu"`
		MemoryMB   *string           `json:"memory_mb"`
		AutoExtend *string           `json:"auto_extend"`
		Network    *model.Network    `json:"network,omitempty"` // absent from older fingerprints
		Volumes    []volumes.Request `json:"volumes,omitempty"`
		Template   string            `json:"template,omitempty"`
		DiskMB     *int64            `json:"disk_mb,omitempty"`
	}{in.Image, command, envNames, metadata, timeout, cpu, memory, autoExtend, in.Network, in.Volumes, in.Template, in.DiskMB})
	if err != nil {
		// Only strings, string slices and string maps are marshalled: this cannot fail.
		panic(fmt.Sprintf("lifecycle: canonical create request: %v", err))
	}
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// errKeyReused is Stripe's answer to an Idempotency-Key sent again with another request.
func errKeyReused() error {
	return apierror.Unprocessable("idempotency_key_reused",
		"this Idempotency-Key was already used with a different request; send the same request to get its sandbox, or use a new key")
}

// replay answers a create whose Idempotency-Key is already taken: the first sandbox when the
// request is the same, 422 idempotency_key_reused when it differs. A sandbox created before
// fingerprints were recorded has none and is replayed as before.
func (s *Service) replay(first *model.Sandbox, in CreateInput) (*model.Sandbox, bool, error) {
	if first.IdempotencyFingerprint == nil {
		return first, true, nil
	}
	if !bytes.Equal(first.IdempotencyFingerprint, in.fingerprint()) {
		return nil, false, errKeyReused()
	}
	same, err := s.sameEnv(first, in.Env)
	if err != nil {
		return nil, false, err
	}
	if !same {
		return nil, false, errKeyReused()
	}
	return first, true, nil
}

// sameEnv compares env values with the first sandbox's sealed ones (the names already matched).
func (s *Service) sameEnv(first *model.Sandbox, env map[string]string) (bool, error) {
	stored, err := s.openEnv(first)
	if err != nil {
		return false, fmt.Errorf("comparing a replayed create: %w", err)
	}
	return maps.Equal(stored, env), nil
}
