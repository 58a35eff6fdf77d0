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
	cmd := &cobra.Command{
		Use:   "volume-plugin --name NAME --root DIR",
		Short: "Serve the Caisson Docker volume driver (a legacy plugin on a unix socket)",
		Long: `Serve the Caisson Docker volume driver until SIGTERM or SIGINT, then remove its socket.

Docker finds it by name: docker volume create -d NAME -o type=loop -o size=1g data

Volume options (-o):
  type=dir     a directory under the root (default); size= needs the root on XFS mounted with prjquota
  type=loop    a sparse disk image, formatted (fs=ext4 or fs=xfs) and loop-mounted: a real size= on any filesystem
  type=tmpfs   memory; size= optional
  type=bind    an existing host directory (path=/dir), never deleted
  size=SIZE    512m, 2g, ...
  uid=N gid=N mode=OCTAL   owner and permissions of the volume's root, set at create
  keep=true    keep the data (dir, loop) when the volume is removed; a later volume of the same name,
               type, fs and size takes it over

State (volumes, options, reference counts per mount ID) is kept in ROOT/state.json and survives plugin
restarts and reboots; ROOT must be on persistent storage.`,
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
			d, err := driver.New(driver.Config{Root: absRoot, Logger: log})
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
			log.Info("serving", "socket", socket, "root", absRoot)
			return driver.Serve(ctx, d, l)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "plugin name: Docker's -d/--driver value; the socket is "+driver.PluginDir+"/NAME.sock")
	f.StringVar(&root, "root", "", "directory for volumes and state (must survive reboots)")
	f.StringVar(&socket, "socket", "", "socket path instead of "+driver.PluginDir+"/NAME.sock")
	f.StringVar(&group, "group", "0", "group (name or id) that may use the socket (mode 0660)")
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
