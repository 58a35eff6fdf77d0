// Package driver is the Caisson Docker volume driver (`caisson volume-plugin`):
// dir, loop, tmpfs and bind volumes with sizes, ownership and reference
// counts that survive crashes, served on Docker's volume plugin protocol.
//
// A volume's life:
//
//	Create   check the name, bound the options, parse them; build the storage
//	         (a dir, a formatted image, nothing for tmpfs, a checked bind path)
//	Mount    count the mount ID; the first one mounts the backing filesystem
//	         (loop, tmpfs, or the bind directory, opened without following
//	         symlinks and bind-mounted under the root) on volumes/NAME/mnt
//	Unmount  drop one count; the last one unmounts the backing filesystem
//	Remove   refused while anything uses the data, whatever the counts say:
//	         a mount of it in any mount namespace, a loop device attached to
//	         its image, a file open in it; then the data goes to trash/ and
//	         is deleted once nothing uses it
//
// What it trusts: the state file and the layout under the plugin root (it
// refuses a root others may write to, and never writes through a symlink,
// device or FIFO there), and nothing a request says: bodies, names, mount
// IDs and options are bounded (limits.go), the socket replaces only a stale
// socket of its own user (socket.go).
package driver
