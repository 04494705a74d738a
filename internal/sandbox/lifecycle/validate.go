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
	"github.com/insien/orchestrator/internal/sandbox/model"
	"github.com/insien/orchestrator/internal/sandbox/volumes"
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
	DiskMB         *int64
	AutoExtend     *bool
	Network        *model.Network // nil: egress none
	Volumes        []volumes.Request
	Template       string // id or name of one of the caller's templates; instead of Image
	IdempotencyKey string
	// template is the resolved Template, whose image Image is (not one of sandbox.allowed_images).
	template *model.Template
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
	diskMB     *int64 // nil: no limit (the runtime cannot enforce one)
	autoExtend bool
	network    model.Network
}

const (
	maxMetadataPairs    = 50
	maxMetadataKeyLen   = 64
	maxMetadataValueLen = 512
	maxCommandArgs      = 256
	maxCommandBytes     = 64 << 10
	maxIdempotencyKey   = 255
)

// envName is a POSIX environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate checks every field against the configured limits, naming the first bad field.
// diskLimit says whether the runtime enforces a disk limit: with it every sandbox gets one (the
// default when the request names none); without, a request naming one is refused.
func validate(in CreateInput, cfg config.Sandbox, diskLimit bool) (spec, error) {
	s := spec{image: in.Image, command: in.Command, env: in.Env, metadata: in.Metadata,
		timeout: cfg.DefaultTimeout, cpu: cfg.DefaultCPU, memoryMB: cfg.DefaultMemoryMB, autoExtend: cfg.AutoExtend}
	if in.AutoExtend != nil {
		s.autoExtend = *in.AutoExtend
	}
	if s.image == "" {
		s.image = cfg.DefaultImage
	}
	if in.template == nil && !slices.Contains(cfg.AllowedImages, s.image) {
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
	diskMB, err := validDisk(in.DiskMB, cfg, diskLimit)
	if err != nil {
		return spec{}, err
	}
	s.diskMB = diskMB
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

// validDisk is a sandbox's disk limit: the request's, in [runtimes.MinDiskMB, max_disk_mb], or
// default_disk_mb; none where the runtime cannot enforce one, where naming one is a 409 (the
// request is valid, this server cannot honour it).
func validDisk(diskMB *int64, cfg config.Sandbox, diskLimit bool) (*int64, error) {
	if diskMB != nil && (*diskMB < runtimes.MinDiskMB || *diskMB > cfg.MaxDiskMB) {
		return nil, apierror.Invalid("disk_mb", "disk_mb must be between %d and %d", runtimes.MinDiskMB, cfg.MaxDiskMB)
	}
	if !diskLimit {
		if diskMB != nil {
			return nil, apierror.Conflict("not_supported_by_runtime",
				"this server's runtime cannot limit a sandbox's disk (its engine's storage has no per-container size); leave disk_mb out")
		}
		return nil, nil
	}
	limit := cfg.DefaultDiskMB
	if diskMB != nil {
		limit = *diskMB
	}
	return &limit, nil
}

func validTimeout(seconds int, cfg config.Sandbox) (time.Duration, error) {
	limit := int(cfg.MaxLifetime / time.Second)
	if seconds < 1 || seconds > limit {
		return 0, apierror.Invalid("timeout_seconds", "timeout_seconds must be between 1 and %d", limit)
	}
	return time.Duration(seconds) * time.Second, nil
}

// commandArgv and createEnv are how a create takes its command and env: stored as text and
// sealed as JSON, so they must be valid UTF-8 as well.
var (
	commandArgv = ArgvRules{Field: "command", EmptyProgram: "command[0] must name a program", UTF8: true}
	createEnv   = EnvRules{BadValue: "the value of env %s contains a NUL byte or invalid UTF-8", UTF8: true, ShortNames: true}
)

func validateCommand(cmd []string) error {
	if len(cmd) > maxCommandArgs {
		return apierror.Invalid("command", "command has more than %d arguments", maxCommandArgs)
	}
	size, err := CheckArgv(cmd, commandArgv)
	if err != nil {
		return err
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
	size, err := CheckEnv(env, createEnv)
	if err != nil {
		return err
	}
	if size > maxBytes {
		return apierror.Invalid("env", "env is %d bytes; at most %d are allowed", size, maxBytes)
	}
	return nil
}

// ArgvRules is how an API field takes an argv (create's command; exec's and the terminal's cmd):
// CheckArgv's checks are the same for every field, while each keeps its name and words as its
// clients have always read them.
type ArgvRules struct {
	Field        string // named in errors
	EmptyProgram string // the message for an empty argv[0]
	UTF8         bool   // arguments must be valid UTF-8 as well as free of NUL bytes
}

// CheckArgv refuses an argv whose program (argv[0]) is empty, then one with an argument a
// process cannot receive, and returns the length of its arguments in bytes. An empty argv passes:
// whether one is required is the caller's to say.
func CheckArgv(argv []string, r ArgvRules) (int, error) {
	if len(argv) > 0 && argv[0] == "" {
		return 0, apierror.Invalid(r.Field, "%s", r.EmptyProgram)
	}
	size := 0
	for i, arg := range argv {
		if strings.ContainsRune(arg, 0) || (r.UTF8 && !utf8.ValidString(arg)) {
			what := "a NUL byte"
			if r.UTF8 {
				what += " or invalid UTF-8"
			}
			return 0, apierror.Invalid(r.Field, "%s[%d] contains %s", r.Field, i, what)
		}
		size += len(arg)
	}
	return size, nil
}

// EnvRules is how an API field takes environment variables (create's env, exec's env), in the
// field's own words; CheckEnv's checks are the same for both.
type EnvRules struct {
	BadValue   string // the message, given the variable's name, for a value a process cannot receive
	UTF8       bool   // values must be valid UTF-8 as well as free of NUL bytes
	ShortNames bool   // a refused name is quoted cut to 32 characters, not whole
}

// CheckEnv refuses a variable whose name is not a POSIX name or whose value a process cannot
// receive, and returns the size of the environment as "NAME=value\x00" strings, in bytes.
func CheckEnv(env map[string]string, r EnvRules) (int, error) {
	size := 0
	for name, value := range env {
		if !envName.MatchString(name) {
			shown := name
			if r.ShortNames {
				shown = truncate(name)
			}
			return 0, apierror.Invalid("env", "env name %q is not a POSIX name ([A-Za-z_][A-Za-z0-9_]*)", shown)
		}
		if strings.ContainsRune(value, 0) || (r.UTF8 && !utf8.ValidString(value)) {
			return 0, apierror.Invalid("env", r.BadValue, name)
		}
		size += len(name) + len(value) + 2
	}
	return size, nil
}

func truncate(s string) string {
	if r := []rune(s); len(r) > 32 {
		return fmt.Sprintf("%s…", string(r[:32]))
	}
	return s
}
