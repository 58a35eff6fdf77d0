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

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/config"
	"github.com/caisson/caisson/internal/atomicfile"
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
// mode 0600, unless it is there already.
func writeMonitorConfig(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600, false)
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
