package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/client"
	"github.com/caisson/caisson/internal/pki"
	"github.com/caisson/caisson/internal/userfile"
)

// The commands that call the master's API (consumer, token, submit,
// session, task, logs TASK, agents) reach it as the client settings say:
// client.master, client.tls_ca and the token. The token itself is never
// in the config file: --token gives it at the flags' layer, CAISSON_TOKEN
// at the environment's, and --token-file, CAISSON_TOKEN_FILE and
// client.token_file name a file holding it.

// tokenEnv holds the token itself.
const tokenEnv = "CAISSON_TOKEN"

// maxTokenFile bounds a token file: a token is a few dozen bytes.
const maxTokenFile = 4 << 10

// clientFlags gives cmd the client settings and --token, as flags of its
// own.
func (g *globals) clientFlags(cmd *cobra.Command) *cobra.Command {
	g.settingFlags(cmd.Flags(), clientSettings...)
	cmd.Flags().String("token", "", "the token to send (visible to other users in the process list: prefer --token-file or "+tokenEnv+")")
	return cmd
}

// masterClient is the client of the master that cmd's settings name.
func (g *globals) masterClient(cmd *cobra.Command) (*client.Client, error) {
	token, err := g.token(cmd)
	if err != nil {
		return nil, err
	}
	var cfg *tls.Config
	if ca := g.cfg.Client.TLSCA; ca != "" {
		if cfg, err = (pki.Files{CA: ca}).ClientConfig(); err != nil {
			return nil, fmt.Errorf("the cluster's CA (client.tls_ca): %w", err)
		}
	}
	return client.New(client.Options{URL: g.cfg.Client.Master, Token: token, TLS: cfg, UserAgent: "caisson/" + version})
}

// token is the token cmd sends: --token or --token-file (not both), else
// CAISSON_TOKEN, else the file that CAISSON_TOKEN_FILE or
// client.token_file names. No error shows it.
func (g *globals) token(cmd *cobra.Command) (string, error) {
	fl := cmd.Flags()
	byFlag, fileByFlag := fl.Changed("token"), fl.Changed("token-file")
	switch {
	case byFlag && fileByFlag:
		return "", fmt.Errorf("--token and --token-file: give one: %w", api.ErrInvalid)
	case byFlag:
		v := fl.Lookup("token").Value.String()
		if v == "" {
			return "", fmt.Errorf("--token: an empty value: %w", api.ErrInvalid)
		}
		return v, nil
	case fileByFlag:
		return readToken(g.cfg.Client.TokenFile, "--token-file")
	}
	if v := os.Getenv(tokenEnv); v != "" {
		return v, nil
	}
	if g.cfg.Client.TokenFile != "" {
		return readToken(g.cfg.Client.TokenFile, "client.token_file")
	}
	return "", fmt.Errorf("no token: give --token-file FILE (or %s, or client.token_file in the config file), or %s: %w",
		settingFor("client.token_file").env[0], tokenEnv, api.ErrUnauthorized)
}

// readToken reads a token file: the token, and spaces or newlines around
// it. from names the setting that named the file.
func readToken(path, from string) (string, error) {
	b, err := userfile.ReadFile(path, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s: %s holds no token: %w", from, path, api.ErrInvalid)
	}
	return t, nil
}

// masterError says what to do about an error of the master's API where
// the user can do something: name the cluster's CA, or a flag of the
// command for a field the master refused (fields maps the JSON paths to
// the flags).
func masterError(err error, fields map[string]string) error {
	var ua x509.UnknownAuthorityError
	var host x509.HostnameError
	var ce *client.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ua):
		return &flagError{msg: err.Error() + " (give the cluster's CA certificate with --tls-ca or CAISSON_TLS_CA)", err: err}
	case errors.As(err, &host):
		return &flagError{msg: err.Error() + " (--master must name a host the master's certificate is for)", err: err}
	case errors.As(err, &ce) && fields[ce.Field] != "":
		return &flagError{msg: fields[ce.Field] + ": " + ce.Message, err: err}
	}
	return err
}

// formatResources writes amounts as caisson node's --resources takes
// them: "cpus:4 mem:8GiB gpus:2", "-" for none.
func formatResources(r api.TaskResources) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+":"+v) }
	if r.CPUs != 0 {
		add("cpus", fmt.Sprintf("%g", r.CPUs))
	}
	if r.MemoryBytes != 0 {
		add("mem", api.FormatSize(uint64(r.MemoryBytes)))
	}
	if r.DiskBytes != 0 {
		add("disk", api.FormatSize(uint64(r.DiskBytes)))
	}
	if r.GPUs != 0 {
		add("gpus", fmt.Sprintf("%g", r.GPUs))
	}
	if r.Ports != 0 {
		add("ports", fmt.Sprint(r.Ports))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// table writes rows under a header, aligned as ps does.
func table(out io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// listOutput prints a list as JSON (an empty one as []) or as a table.
func listOutput[T any](out io.Writer, format string, list []T, header string, row func(T) []string) error {
	if list == nil {
		list = []T{}
	}
	if format == "json" {
		return printJSON(out, list)
	}
	rows := make([][]string, 0, len(list))
	for _, v := range list {
		rows = append(rows, row(v))
	}
	return table(out, header, rows)
}

// eachID calls fn for each ID, going on after errors and returning them
// all, as forEach does for containers.
func eachID(ids []string, fn func(id string) error) error {
	var errs []error
	for _, id := range ids {
		if err := fn(id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
