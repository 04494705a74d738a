package lifecycle

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
)

// CreateInput is what a caller asks for; nil pointers take the configured defaults.
type CreateInput struct {
	Image          string
	Command        []string
	Env            map[string]string
	Metadata       map[string]string
	TimeoutSeconds *int
	CPU            *float64
	MemoryMB       *int64
	AutoExtend     *bool
	IdempotencyKey string
}

// spec is a validated CreateInput with defaults applied.
type spec struct {
	image      string
	command    []string
	env        map[string]string
	metadata   map[string]string
	timeout    time.Duration
	cpu        float64
	memoryMB   int64
	autoExtend bool
}

const (
	maxMetadataPairs    = 50
	maxMetadataKeyLen   = 64
	maxMetadataValueLen = 512
	maxCommandArgs      = 256
	maxCommandBytes     = 64 << 10
	maxIdempotencyKey   = 255
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvName reports whether name is a POSIX environment variable name.
func ValidEnvName(name string) bool { return envName.MatchString(name) }

// validate checks every field against the configured limits, naming the first bad field.
func validate(in CreateInput, cfg config.Sandbox) (spec, error) {
	s := spec{image: in.Image, command: in.Command, env: in.Env, metadata: in.Metadata,
		timeout: cfg.DefaultTimeout, cpu: cfg.DefaultCPU, memoryMB: cfg.DefaultMemoryMB, autoExtend: cfg.AutoExtend}
	if in.AutoExtend != nil {
		s.autoExtend = *in.AutoExtend
	}
	if s.image == "" {
		s.image = cfg.DefaultImage
	}
	if !slices.Contains(cfg.AllowedImages, s.image) {
		return spec{}, apierror.Invalid("image", "image %q is not allowed (allowed: %s)", s.image, strings.Join(cfg.AllowedImages, ", "))
	}
	if err := validateCommand(s.command); err != nil {
		return spec{}, err
	}
	if in.CPU != nil {
		cpu, err := validCPU(*in.CPU, cfg.MaxCPU)
		if err != nil {
			return spec{}, err
		}
		s.cpu = cpu
	}
	if in.MemoryMB != nil {
		if *in.MemoryMB < runtimes.MinMemoryMB || *in.MemoryMB > cfg.MaxMemoryMB {
			return spec{}, apierror.Invalid("memory_mb", "memory_mb must be between %d and %d", runtimes.MinMemoryMB, cfg.MaxMemoryMB)
		}
		s.memoryMB = *in.MemoryMB
	}
	if in.TimeoutSeconds != nil {
		t, err := validTimeout(*in.TimeoutSeconds, cfg)
		if err != nil {
			return spec{}, err
		}
		s.timeout = t
	}
	if err := validateMetadata(s.metadata); err != nil {
		return spec{}, err
	}
	if err := validateEnv(s.env, cfg.MaxEnvBytes); err != nil {
		return spec{}, err
	}
	if len(in.IdempotencyKey) > maxIdempotencyKey || strings.ContainsFunc(in.IdempotencyKey, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return spec{}, apierror.Invalid("Idempotency-Key", "Idempotency-Key must be at most %d printable characters", maxIdempotencyKey)
	}
	return s, nil
}

// validCPU accepts a CPU limit the runtime enforces: at least runtimes.MinCPU (below it the engine
// sets no limit at all, or fails), at most max, in whole runtimes.CPUStep (millicores). It returns
// the value rounded to the step, so the limit recorded is the one applied.
func validCPU(cpu, max float64) (float64, error) {
	// Written so that NaN fails too.
	if !(cpu >= runtimes.MinCPU && cpu <= max) {
		return 0, apierror.Invalid("cpu", "cpu must be between %g and %g cores", runtimes.MinCPU, max)
	}
	steps := cpu / runtimes.CPUStep
	if math.Abs(steps-math.Round(steps)) > 1e-6 {
		return 0, apierror.Invalid("cpu", "cpu must be a whole number of millicores (at most 3 decimals), got %g", cpu)
	}
	return math.Round(steps) * runtimes.CPUStep, nil
}

func validTimeout(seconds int, cfg config.Sandbox) (time.Duration, error) {
	limit := int(cfg.MaxLifetime / time.Second)
	if seconds < 1 || seconds > limit {
		return 0, apierror.Invalid("timeout_seconds", "timeout_seconds must be between 1 and %d", limit)
	}
	return time.Duration(seconds) * time.Second, nil
}

func validateCommand(cmd []string) error {
	if len(cmd) > maxCommandArgs {
		return apierror.Invalid("command", "command has more than %d arguments", maxCommandArgs)
	}
	size := 0
	for i, arg := range cmd {
		size += len(arg)
		if strings.ContainsRune(arg, 0) || !utf8.ValidString(arg) {
			return apierror.Invalid("command", "command[%d] contains a NUL byte or invalid UTF-8", i)
		}
	}
	if len(cmd) > 0 && cmd[0] == "" {
		return apierror.Invalid("command", "command[0] must name a program")
	}
	if size > maxCommandBytes {
		return apierror.Invalid("command", "command is larger than %d bytes", maxCommandBytes)
	}
	return nil
}

func validateMetadata(md map[string]string) error {
	if len(md) > maxMetadataPairs {
		return apierror.Invalid("metadata", "metadata has %d pairs; at most %d are allowed", len(md), maxMetadataPairs)
	}
	for k, v := range md {
		if n := utf8.RuneCountInString(k); n < 1 || n > maxMetadataKeyLen {
			return apierror.Invalid("metadata", "metadata keys must be 1 to %d characters (got %q)", maxMetadataKeyLen, truncate(k))
		}
		if utf8.RuneCountInString(v) > maxMetadataValueLen {
			return apierror.Invalid("metadata", "metadata value of %q is longer than %d characters", k, maxMetadataValueLen)
		}
		if strings.ContainsRune(k+v, 0) || !utf8.ValidString(k+v) {
			return apierror.Invalid("metadata", "metadata must be valid UTF-8 without NUL bytes")
		}
	}
	return nil
}

func validateEnv(env map[string]string, maxBytes int) error {
	size := 0
	for name, value := range env {
		if !ValidEnvName(name) {
			return apierror.Invalid("env", "env name %q is not a POSIX name ([A-Za-z_][A-Za-z0-9_]*)", truncate(name))
		}
		if strings.ContainsRune(value, 0) || !utf8.ValidString(value) {
			return apierror.Invalid("env", "the value of env %s contains a NUL byte or invalid UTF-8", name)
		}
		size += len(name) + len(value) + 2
	}
	if size > maxBytes {
		return apierror.Invalid("env", "env is %d bytes; at most %d are allowed", size, maxBytes)
	}
	return nil
}

func truncate(s string) string {
	if r := []rune(s); len(r) > 32 {
		return fmt.Sprintf("%s…", string(r[:32]))
	}
	return s
}
