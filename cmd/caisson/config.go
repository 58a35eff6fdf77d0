package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/safefile"
)

// monitorCommand is the command line of a container's monitor: this
// binary, reading the resolved configuration from a file written for it,
// and nothing from its environment; and prepare, which writes that file
// (see writeMonitorConfig), for the containerizer to call when it starts
// a monitor: a command that starts none writes nothing. The dirs, the
// same as the file's, are given as flags too, so that a process list
// shows which work dir a monitor serves.
func (g *globals) monitorCommand() (cmdline []string, prepare func() error, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	data, err := config.Encode(g.cfg)
	if err != nil {
		return nil, nil, err
	}
	path := monitorConfigPath(g.cfg.State.RunRoot, data)
	cmdline = []string{self, "--config", path, "--root", g.cfg.State.Root, "--run-root", g.cfg.State.RunRoot, "monitor"}
	return cmdline, func() error { return writeMonitorConfig(path, data) }, nil
}

// monitorConfigPath is where a monitor reads data, the configuration as
// config.Encode writes it: under the run root, named by its contents, so
// that every container started with the same settings shares one file and
// no command can change the file another's monitor reads. The run root is
// gone at reboot, with the monitors.
func monitorConfigPath(runRoot string, data []byte) string {
	sum := sha256.Sum256(data)
	return filepath.Join(runRoot, "config", hex.EncodeToString(sum[:])+".toml")
}

// writeMonitorConfig writes data at path (monitorConfigPath), atomically,
// mode 0600, unless it is there already. The file names the programs a
// monitor runs as root (the runtime, the NVML helper, the CNI plugins),
// so nobody else may have a hand in it: the dir (made 0700 in the run
// root, which must exist) must be a dir, not a link to one, this user's,
// and writable by nobody else, or nothing is written; a file already
// there is kept only if it is a regular file of this user's, mode 0600,
// with the same contents, and replaced otherwise (a link is replaced, not
// followed).
func writeMonitorConfig(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := checkPrivateDir(dir); err != nil {
		return err
	}
	if old, err := readPrivateFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data, 0o600, false)
}

// readMonitorConfig reads the file a monitor was given (writeMonitorConfig)
// with the checks the writer made, and refuses contents that are not what
// the file's name says: their SHA-256 must be its name. The monitor runs
// what the file names, as root: nothing but the file its container's
// command wrote will do.
func readMonitorConfig(path string) ([]byte, error) {
	if err := checkPrivateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if name := filepath.Base(path); name != hex.EncodeToString(sum[:])+".toml" {
		return nil, fmt.Errorf("monitor config %s: contents whose SHA-256 is not its name: %w", path, api.ErrCorrupt)
	}
	return data, nil
}

// loadMonitorConfig reads the monitor's file (readMonitorConfig) onto c,
// as config.Load reads another.
func loadMonitorConfig(path string, c *config.Config) (config.Lines, error) {
	data, err := readMonitorConfig(path)
	if err != nil {
		return nil, err
	}
	lines, err := config.Decode(data, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, nil
}

// checkPrivateDir refuses a dir that others could change: a symbolic link,
// not a dir, owned by another user than this process's, or writable by its
// group or others.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is %s, not a directory: %w", dir, safefile.Kind(fi.Mode()), api.ErrInvalid)
	}
	if err := checkOwner(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by its group or others (mode %04o): %w", dir, fi.Mode().Perm(), api.ErrInvalid)
	}
	return nil
}

// readPrivateFile reads path, at most config.MaxFileSize bytes, if it is a
// regular file (a symbolic link is not followed), this user's, mode 0600.
func readPrivateFile(path string) ([]byte, error) {
	f, err := safefile.OpenNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkOwner(path, fi); err != nil {
		return nil, err
	}
	if fi.Mode().Perm() != 0o600 {
		return nil, fmt.Errorf("%s: mode %04o, want 0600: %w", path, fi.Mode().Perm(), api.ErrInvalid)
	}
	return safefile.ReadAll(f, config.MaxFileSize)
}

// checkOwner refuses a file that another user than this process's owns.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner known: %w", path, api.ErrInvalid)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not %d: %w", path, st.Uid, os.Geteuid(), api.ErrInvalid)
	}
	return nil
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print, check and show caisson's config file",
		Long: `caisson reads its settings from a TOML file: --config, else $` + configEnv + `,
else ` + config.DefaultPath + ` if it exists. Each setting is overridden by its
environment variable (one set to the empty string counts as unset), and that
by its flag where the command has one. default prints the file with every key,
its default, its flag and its variable; check validates a file; show prints
what the commands resolve, the file and the environment applied.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newConfigDefaultCmd(), newConfigCheckCmd(g), newConfigShowCmd(g))
	return cmd
}

func newConfigDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:         "default",
		Short:       "Print a complete config file with the defaults and a comment for each key",
		Example:     `  caisson config default > /etc/caisson/config.toml`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{configAnnotation: noConfig},
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := defaultFile()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}

func newConfigCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a config file (default: the one caisson reads)",
		Long: `Validate a config file over the defaults, as every command does before it runs:
its syntax, its version (1), that every key is known, and every value. Each
problem is named with its line and key. The environment and the flags are not
applied. Without FILE, the file caisson reads: --config, else $` + configEnv + `,
else ` + config.DefaultPath + ` (whose absence is no error).`,
		Args:        cobra.MaximumNArgs(1),
		Annotations: map[string]string{configAnnotation: noConfig},
		RunE: func(cmd *cobra.Command, args []string) error {
			path, named := g.configPath(cmd)
			if len(args) == 1 {
				path, named = args[0], true
			}
			_, err := config.Check(path)
			if !named && errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: no such file; the defaults apply\n", path)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
}

func newConfigShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the configuration the commands resolve: the defaults, the file, the environment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Encode(g.cfg)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}

// keyLine is a key's line in a file config.Encode writes.
var keyLine = regexp.MustCompile(`^([a-z_]+) = `)

// defaultFile is the default configuration as a file, with the flag and
// the variables of each key in a comment above it.
func defaultFile() ([]byte, error) {
	b, err := config.Encode(config.Default())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]") + "."
		}
		if m := keyLine.FindStringSubmatch(line); m != nil {
			if s := settingFor(section + m[1]); s != nil {
				fmt.Fprintf(&out, "# flag --%s, env %s\n", s.flag, strings.Join(s.env, " then "))
			}
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes(), sc.Err()
}
