package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/caisson/caisson/agenthook"
	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/cni"
	"github.com/caisson/caisson/containerizer/image"
	"github.com/caisson/caisson/gpu"
	gpuisolator "github.com/caisson/caisson/gpu/isolator"
	"github.com/caisson/caisson/isolators/cgroups"
)

// Version is the version of the file format this caisson reads and writes.
const Version = 1

// DefaultPath is where caisson looks for its file when none is named. A
// missing file there is no error: the defaults apply.
const DefaultPath = "/etc/caisson/config.toml"

// MaxFileSize bounds what Load reads: a config file is a few KiB.
const MaxFileSize = 1 << 20

// Config is caisson's whole configuration: the file's contents over the
// defaults. Every section is a struct with a Validate method.
type Config struct {
	Version  int      `toml:"version" comment:"The version of this file's format; this caisson reads 1."`
	State    State    `toml:"state" comment:"Where caisson keeps its state."`
	Log      Log      `toml:"log" comment:"caisson's own log, on standard error."`
	Runtime  Runtime  `toml:"runtime" comment:"The OCI runtime."`
	Cgroups  Cgroups  `toml:"cgroups" comment:"The cgroups isolator."`
	CNI      CNI      `toml:"cni" comment:"The CNI network isolator."`
	Volumes  Volumes  `toml:"volumes" comment:"The Docker volume isolator."`
	Images   Images   `toml:"images" comment:"Images: pulls and the image store."`
	Security Security `toml:"security" comment:"What a launch may ask for."`
	GPU      GPU      `toml:"gpu" comment:"NVIDIA GPUs."`
	Host     Host     `toml:"host" comment:"This host: where its /proc and /sys are, what it offers."`
	Master   Master   `toml:"master" comment:"The scheduler's server (caisson master, caisson up)."`
	Agent    Agent    `toml:"agent" comment:"The node daemon (caisson agent, caisson up); it offers what [host] says."`
	Client   Client   `toml:"client" comment:"How caisson submit, session, task, logs, consumer, token and agents reach the master."`
	Hooks    Hooks    `toml:"hooks" comment:"The admin's hooks, as [[hooks.exec]] and [[hooks.oci]] tables (docs/hooks.md)."`
}

// Default returns the built-in configuration.
func Default() Config {
	return Config{
		Version: Version,
		State:   State{Root: "/var/lib/caisson", RunRoot: "/run/caisson"},
		Log:     Log{Level: "warn"},
		Runtime: Runtime{Binary: "runc", Timeout: Duration{2 * time.Minute}},
		Cgroups: Cgroups{Parent: cgroups.DefaultParent},
		CNI: CNI{
			ConfigDir: cni.DefaultConfDir, PluginDirs: slices.Clone(cni.DefaultPluginDirs),
			DefaultNetwork: cni.DefaultNetworkName, DefaultSubnet: cni.DefaultSubnet, DefaultBridge: cni.DefaultBridge,
			Timeout: Duration{cni.DefaultTimeout},
		},
		Volumes:  Volumes{DockerHost: "unix:///var/run/docker.sock"},
		Images:   Images{MaxSize: image.DefaultMaxImageSize, InsecureRegistries: []string{}},
		Security: Security{SeccompAllow: slices.Clone(api.SeccompProfiles)},
		GPU:      GPU{Backend: gpu.BackendNVML, NUMAAffinity: gpuisolator.NUMABestEffort},
		Host:     Host{ProcFS: "/proc", SysFS: "/sys"},
		Master:   DefaultMaster(),
		Agent:    DefaultAgent(),
		Client:   DefaultClient(),
		Hooks: Hooks{NRI: NRI{
			PluginPath: agenthook.DefaultNRIPluginPath, PluginConfigPath: agenthook.DefaultNRIPluginConfigPath,
			Socket: agenthook.DefaultNRISocketPath, RegistrationTimeout: Duration{agenthook.DefaultNRIRegistrationTimeout}, RequestTimeout: Duration{agenthook.DefaultNRIRequestTimeout},
		}},
	}
}

// KeyError is a value refused at a key ("cni.timeout"), with the file and
// line that set it where they are known. It matches what it wraps, always
// api.ErrInvalid.
type KeyError struct {
	File string
	Line int
	// Key is dotted, section first; empty for an error of the file as a
	// whole (its syntax).
	Key string
	Err error
}

func (e *KeyError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *KeyError) Unwrap() error { return e.Err }

// KeyErrors lists the *KeyError in err, a joined error or one alone.
func KeyErrors(err error) []*KeyError {
	var out []*KeyError
	for _, e := range leafErrors(err) {
		var ke *KeyError
		if errors.As(e, &ke) {
			out = append(out, ke)
		}
	}
	return out
}

// validator is a section.
type validator interface{ Validate() error }

// Validate checks the version and every section, and returns every
// problem found: *KeyError values, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Version != Version {
		errs = append(errs, &KeyError{Key: "version", Err: fmt.Errorf("%d: want %d: %w", c.Version, Version, api.ErrInvalid)})
	}
	return errors.Join(append(errs, validateSections(c)...)...)
}

// validateSections validates each field of the struct s that has a
// Validate, a section, and keys its errors by the section's name: a
// *KeyError's key within the section gets the name before it; any other
// error is the section's as a whole, keyed by its name alone, and made to
// match api.ErrInvalid if it did not.
func validateSections(s any) []error {
	var errs []error
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		sec, ok := v.Field(i).Interface().(validator)
		if !ok {
			continue
		}
		name := tomlKey(v.Type().Field(i))
		for _, err := range leafErrors(sec.Validate()) {
			var ke *KeyError
			switch {
			case errors.As(err, &ke) && ke.Key != "":
				errs = append(errs, &KeyError{Key: name + "." + ke.Key, Err: ke.Err})
			case errors.As(err, &ke):
				errs = append(errs, &KeyError{Key: name, Err: ke.Err})
			case errors.Is(err, api.ErrInvalid):
				errs = append(errs, &KeyError{Key: name, Err: err})
			default:
				errs = append(errs, &KeyError{Key: name, Err: fmt.Errorf("%w: %w", err, api.ErrInvalid)})
			}
		}
	}
	return errs
}

// leafErrors are the errors joined in err (errors.Join, nested or not),
// or err alone; none for nil.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leafErrors(e)...)
	}
	return out
}

// tomlKey is a field's key in the file.
func tomlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// Lines maps each key a file sets ("cni.timeout") to its line.
type Lines map[string]int

// Decode reads a file's contents onto c: the keys it sets replace c's
// values, the others keep them. A file must say version = 1; an unknown
// key is an error. Errors are *KeyError values, joined, with their lines.
// Decode does not Validate.
func Decode(data []byte, c *Config) (Lines, error) {
	lines, atLine, err := keyLines(data)
	if err != nil {
		// A syntax error: the decoder says where.
		if derr := toml.Unmarshal(data, &struct{}{}); derr != nil {
			return nil, decodeError(derr, nil)
		}
		return nil, err
	}
	// The version first: a file of another version is refused for that
	// alone, not for the keys this version does not know.
	var head struct {
		Version *int `toml:"version"`
	}
	if err := toml.Unmarshal(data, &head); err != nil {
		return nil, decodeError(err, atLine)
	}
	switch {
	case head.Version == nil:
		return nil, &KeyError{Key: "version", Err: fmt.Errorf("missing; this caisson reads version = %d: %w", Version, api.ErrInvalid)}
	case *head.Version != Version:
		return nil, &KeyError{Line: lines["version"], Key: "version", Err: fmt.Errorf("%d: this caisson reads version %d: %w", *head.Version, Version, api.ErrInvalid)}
	}
	next := *c
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&next); err != nil {
		return nil, decodeError(err, atLine)
	}
	*c = next
	return lines, nil
}

// decodeError turns the TOML library's errors into *KeyError values. An
// error the library reports without its key, or without its table, gets
// the key set on its line (atLine, from keyLines).
func decodeError(err error, atLine map[int]string) error {
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case errors.As(err, &strict):
		var errs []error
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			errs = append(errs, &KeyError{Line: line, Key: strings.Join(e.Key(), "."), Err: fmt.Errorf("unknown key: %w", api.ErrInvalid)})
		}
		return errors.Join(errs...)
	case errors.As(err, &de):
		line, _ := de.Position()
		// The library may give the key without its table, or none.
		key := strings.Join(de.Key(), ".")
		if full := atLine[line]; key == "" || strings.HasSuffix(full, "."+key) {
			key = full
		}
		// The library keeps only the text of the errors it wraps (a
		// duration's or a size's, which say invalid argument already).
		msg := strings.TrimSuffix(strings.TrimPrefix(de.Error(), "toml: "), ": "+api.ErrInvalid.Error())
		return &KeyError{Line: line, Key: key, Err: fmt.Errorf("%s: %w", msg, api.ErrInvalid)}
	case errors.Is(err, api.ErrInvalid):
		return err // a value of ours, refused where the library gives no position
	default:
		return fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
}

// Load reads the file at path onto c, as Decode does; its errors name
// the file.
func Load(path string, c *Config) (Lines, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	lines, err := Decode(data, c)
	if err != nil {
		return nil, inFile(path, err)
	}
	return lines, nil
}

// readFile reads a config file, at most MaxFileSize bytes of it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, MaxFileSize, api.ErrInvalid)
	}
	return data, nil
}

// inFile sets the file of every *KeyError in err.
func inFile(path string, err error) error {
	kes := KeyErrors(err)
	if len(kes) == 0 {
		return fmt.Errorf("%s: %w", path, err)
	}
	errs := make([]error, 0, len(kes))
	for _, ke := range kes {
		ke := *ke
		ke.File = path
		errs = append(errs, &ke)
	}
	return errors.Join(errs...)
}

// Check reads the file at path over the defaults and validates the result:
// what caisson config check does. Errors are *KeyError values with the
// file and the line of each key.
func Check(path string) (Config, error) {
	c := Default()
	lines, err := Load(path, &c)
	if err != nil {
		return c, err
	}
	err = c.Validate()
	for _, ke := range KeyErrors(err) {
		ke.File, ke.Line = path, lines[ke.Key]
	}
	return c, err
}

// Header opens every file Encode writes.
const Header = `# caisson's configuration (TOML). Each setting is overridden by its environment
# variable, and that by its flag; see docs/configuration.md.
`

// Encode writes c as a complete file, every key with its comment.
func Encode(c Config) ([]byte, error) {
	b, err := toml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return append([]byte(Header+"\n"), b...), nil
}
