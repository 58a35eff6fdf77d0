// Package volumes holds what Caisson's two halves of Docker volume support
// share: the rules for volume names and mount requests.
//
//   - volumes/driver is the Docker volume driver that Docker users install
//     (`caisson volume-plugin`): dir, loop, tmpfs and bind volumes with
//     sizes, ownership and reference counts that survive crashes.
//   - volumes/client speaks the Docker volume plugin protocol to any plugin,
//     legacy (a socket or spec file) or managed (found through dockerd).
//   - volumes/isolator is the docker/volume isolator: it mounts any plugin's
//     volumes into Caisson containers.
package volumes
