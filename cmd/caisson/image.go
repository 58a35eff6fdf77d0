package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer/image"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "List and remove the images and layers in the store",
		Long: `Images are kept in the work dir (--root) once a container used them: one entry
per reference and platform, and their layers, unpacked once and shared.
ls lists them, rm removes images, prune removes every image no container
uses and every layer no image uses. An image that a container uses, even an
exited one, is removed only once the container is (or, with rm -f, only when
every such container has exited).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newImageLsCmd(g), newImageRmCmd(g), newImagePruneCmd(g))
	return cmd
}

func newImageLsCmd(g *globals) *cobra.Command {
	var (
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List images: reference, platform, ID, creation time and unpacked size",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			store, err := g.imageStore(g.logger())
			if err != nil {
				return err
			}
			list, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, i := range list {
					fmt.Fprintln(out, shortID(i.ID))
				}
				return nil
			case format == "json":
				return printJSON(out, list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tPLATFORM\tIMAGE ID\tCREATED\tSIZE")
			for _, i := range list {
				created := "-"
				if !i.Created.IsZero() {
					created = ago(i.Created)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.Reference, i.Platform, shortID(i.ID), created, api.FormatSize(uint64(i.Size)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only image IDs")
	return cmd
}

func newImageRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] IMAGE...",
		Aliases: []string{"remove"},
		Short:   "Remove images, by reference (as run takes it) or by ID (a unique prefix)",
		Long: `Remove images, by reference (as run takes it) or by ID (a unique prefix of the
config digest). Removing one of several references to an image only removes
that reference (untags); removing the last one removes the image and the
layers no other image uses. An image that a container uses is refused, even
an exited container's: remove the container first, or force.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, users, err := imageStoreAndUsers(cmd.Context(), g)
			if err != nil {
				return err
			}
			rep, err := store.Remove(cmd.Context(), args, image.RemoveOptions{Force: force, Users: users})
			printRemoved(cmd.OutOrStdout(), rep)
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove images that only exited containers use (never one a running container uses)")
	return cmd
}

func newImagePruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove every image no container uses, and every layer no image uses",
		Long: `Remove every image that no container uses (exited ones count until they are
removed), every layer that no remaining image uses, and what interrupted
unpacks left behind. It prints what it removed and the space reclaimed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, users, err := imageStoreAndUsers(cmd.Context(), g)
			if err != nil {
				return err
			}
			rep, err := store.Prune(cmd.Context(), image.RemoveOptions{Users: users})
			printRemoved(cmd.OutOrStdout(), rep)
			if rep != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "Total reclaimed space: %s\n", api.FormatSize(uint64(rep.Reclaimed)))
			}
			return err
		},
	}
}

// imageStoreAndUsers opens the image store and finds which containers use
// which image, exited ones included.
func imageStoreAndUsers(ctx context.Context, g *globals) (*image.Store, map[string][]image.ImageUser, error) {
	cz, err := g.open(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	list, err := cz.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	users := map[string][]image.ImageUser{}
	for _, c := range list {
		if c.ImageDigest == "" {
			continue
		}
		users[c.ImageDigest] = append(users[c.ImageDigest], image.ImageUser{
			Container: c.ID, Running: c.State != api.StateExited,
		})
	}
	store, err := g.imageStore(g.logger())
	if err != nil {
		return nil, nil, err
	}
	return store, users, nil
}

func printRemoved(w io.Writer, rep *image.RemoveReport) {
	if rep == nil {
		return
	}
	for _, r := range rep.Untagged {
		fmt.Fprintf(w, "Untagged: %s\n", r)
	}
	for _, id := range rep.Deleted {
		fmt.Fprintf(w, "Deleted: %s\n", id)
	}
	for _, l := range rep.Layers {
		fmt.Fprintf(w, "Deleted layer: %s\n", l)
	}
}

// shortID is an image ID's first 12 hex digits, as Docker shows it.
func shortID(id string) string {
	if len(id) > len("sha256:")+12 {
		return id[len("sha256:") : len("sha256:")+12]
	}
	return id
}
