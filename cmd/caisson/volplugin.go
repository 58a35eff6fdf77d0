package main

import (
	"fmt"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/volumes/driver"
)

func newVolumePluginCmd(g *globals) *cobra.Command {
	var name, root, socket, group string
	var bindAllow []string
	cmd := &cobra.Command{
		Use:   "volume-plugin --name NAME --root DIR",
		Short: "Serve the Caisson Docker volume driver (a legacy plugin on a unix socket)",
		Long: `Serve the Caisson Docker volume driver until SIGTERM or SIGINT, then remove its socket.

Docker finds it by name: docker volume create -d NAME -o type=loop -o size=1g data

Volume options (-o):
  type=dir     a directory under the root (default); size= needs the root on XFS mounted with prjquota
  type=loop    a sparse disk image, formatted (fs=ext4 or fs=xfs) and loop-mounted: a real size= on any filesystem
  type=tmpfs   memory; size= optional
  type=bind    an existing host directory (path=/dir), never deleted; only under a --bind-allow directory
  size=SIZE    512m, 2g, ...
  uid=N gid=N mode=OCTAL   owner and permissions of the volume's root, set at create
  keep=true    keep the data (dir, loop) when the volume is removed; a later volume of the same name,
               type, fs and size takes it over

Bind volumes expose host directories to whoever can create volumes, so none is allowed by default
(Docker's local driver allows any path): --bind-allow DIR, repeatable, allows DIR and the directories
below it; --bind-allow / allows any, as Docker does. The plugin root, what is inside it and what holds
it are always refused. The path is checked at create and again at every mount, where it is opened
without following symlinks and bind-mounted under ROOT: what containers get is the directory checked.
Bind volumes made before --bind-allow existed (any path was allowed), or that the list no longer
covers, stay listed and removable but every mount of them is refused (at start, one counted as mounted
whose mount is gone loses its references, which is only logged): give --bind-allow for their
directories when upgrading.

A volume is not removed while anything uses its data, whatever the reference counts say: a mount of it
in any mount namespace (a container), a loop device attached to its image, a file open in it.

Requests are bounded: bodies 64 KiB, names 255 bytes, mount IDs 256 bytes, 32 options of at most
64-byte names and 4096-byte values; anything else, or bytes after the JSON, is refused with {"Err": ...}.

State (volumes, options, reference counts per mount ID) is kept in ROOT/state.json and survives plugin
restarts and reboots; ROOT must be on persistent storage, owned by the plugin's user and not writable
by group or others. The socket replaces only a stale socket of the plugin's user; anything else at
its path is left alone and the plugin does not start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || !api.ValidName(name) {
				return fmt.Errorf("--name %q: want a plugin name of [a-zA-Z0-9][a-zA-Z0-9_.-]*: %w", name, api.ErrInvalid)
			}
			if root == "" {
				return fmt.Errorf("--root is required (where volumes and state live): %w", api.ErrInvalid)
			}
			absRoot, err := filepath.Abs(root)
			if err != nil {
				return err
			}
			if socket == "" {
				socket = filepath.Join(driver.PluginDir, name+".sock")
			}
			gid, err := lookupGroup(group)
			if err != nil {
				return err
			}
			log := g.logger().With("plugin", name)
			d, err := driver.New(driver.Config{Root: absRoot, BindAllow: bindAllow, Logger: log})
			if err != nil {
				return err
			}
			l, err := driver.Listen(socket, gid)
			if err != nil {
				_ = d.Close()
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			log.Info("serving", "socket", socket, "root", absRoot, "bind_allow", bindAllow)
			return driver.Serve(ctx, d, l)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "plugin name: Docker's -d/--driver value; the socket is "+driver.PluginDir+"/NAME.sock")
	f.StringVar(&root, "root", "", "directory for volumes and state (must survive reboots)")
	f.StringVar(&socket, "socket", "", "socket path instead of "+driver.PluginDir+"/NAME.sock")
	f.StringVar(&group, "group", "0", "group (name or id) that may use the socket (mode 0660)")
	f.StringArrayVar(&bindAllow, "bind-allow", nil, "host directory that type=bind volumes may be, or be under (repeatable; / allows any; default: none)")
	return cmd
}

// lookupGroup resolves a group name or numeric id.
func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("--group %q: %w: %w", g, err, api.ErrInvalid)
	}
	return strconv.Atoi(grp.Gid)
}
