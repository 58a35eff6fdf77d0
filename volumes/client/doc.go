// Package client speaks the Docker volume plugin protocol to any volume
// plugin, legacy or managed, without the docker library. Caisson's
// docker/volume isolator uses it to mount plugins' volumes into containers.
//
// A [Discovery] finds a plugin by name in the order dockerd uses, and returns
// a [Client] that has already completed the handshake:
//
//	Discovery.Find(ctx, "NAME")
//	  │ 1. managed (v2) plugins, only when DockerHost is set:
//	  │      GET <DockerHost>/v1.41/plugins   name or "name:latest", or full ID
//	  │      GET <DockerHost>/v1.41/info      DockerRootDir, for the path rewrite
//	  │      socket: <PluginExecRoots[i]>/<ID>/<Config.Interface.Socket>
//	  │    a disabled match is an error: no fallback to legacy plugins
//	  │ 2. legacy (v1) plugins, only for names that are one path element:
//	  │      <SocketDirs[i]>/NAME.sock, <SocketDirs[i]>/NAME/NAME.sock
//	  │      then for each of SpecDirs: NAME.spec, NAME/NAME.spec,
//	  │                                 NAME.json, NAME/NAME.json
//	  ▼
//	Client.Activate       POST /Plugin.Activate → {"Implements":["VolumeDriver"]}
//	Client.Create         POST /VolumeDriver.Create   {"Name","Opts"}
//	Client.Mount          POST /VolumeDriver.Mount    {"Name","ID"} → host path
//	Client.Unmount        POST /VolumeDriver.Unmount  {"Name","ID"}
//	Client.Remove         POST /VolumeDriver.Remove   {"Name"}
//	Client.Get/Path/List/Capabilities                 (informational)
//
// A managed plugin runs in its own mount namespace and reports Mountpoints
// under its PropagatedMount ("/mnt/volumes/x"); [Plugin.HostPath] turns them
// into the host path dockerd uses
// (<DataRoot>/plugins/<ID>/propagated-mount/x) and refuses any path that would
// land outside that directory.
//
// Unlike dockerd, a call is tried once (dockerd retries for 30 s), with
// dockerd's per-call timeouts ([CreateTimeout], [MountTimeout],
// [DefaultTimeout]) unless ctx ends sooner. Errors carry the sentinels of
// package api: a plugin's own {"Err":...} is a [*PluginError] (matching
// api.ErrNotFound when it says the volume does not exist), a plugin that does
// not answer is api.ErrUnavailable, a deadline is api.ErrTimeout.
package client
