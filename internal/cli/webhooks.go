package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newWebhooksCmd lists the server's webhook subscriptions and their
// delivery status (admin).
func newWebhooksCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "webhooks", Aliases: []string{"webhook"},
		Short: "List the webhook subscriptions: events pending, the oldest, delivered and failed attempts (admin)", Args: noArgs,
		Long: `List the server's webhook subscriptions (the webhooks: key of its
configuration file; docs/webhooks.md) with what waits for each: the
events not yet acknowledged by the receiver, the oldest of them, this
server's delivered and failed attempts since it started and, while
events wait, the last error. URLs are shown as scheme://host only.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			list, err := c.ListWebhooks(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tTARGET\tFORMAT\tEVENTS\tPENDING\tOLDEST\tSENT\tFAILED\tLAST ERROR")
				for _, h := range list.Webhooks {
					oldest := "-"
					if h.OldestPending != nil {
						oldest = time.Since(*h.OldestPending).Round(time.Second).String() + " ago"
					}
					events := "all"
					if len(h.Events) > 0 {
						events = strings.Join(h.Events, ",")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", h.Name, h.Target, h.Format, events, h.Pending, oldest, h.Sent, h.Failed, dash(h.LastError))
				}
				fmt.Fprintf(w, "%d webhooks\n", len(list.Webhooks))
			})
		}}
	r.flags(cmd, e, true)
	cmd.AddCommand(newWebhookTestCmd(e))
	return cmd
}

// newWebhookTestCmd sends a webhook.test event to one subscription.
func newWebhookTestCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "test NAME", Short: "Send a webhook.test event to one subscription now and say whether its receiver answered 2xx (admin)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("test takes the subscription's name")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			res, err := c.TestWebhook(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if err := r.show(e, res, func(w io.Writer) {
				if res.Delivered {
					fmt.Fprintf(w, "webhook %s: %s answered 2xx\n", res.Name, res.Target)
				} else {
					fmt.Fprintf(w, "webhook %s: not delivered: %s\n", res.Name, res.Error)
				}
			}); err != nil {
				return err
			}
			if !res.Delivered {
				return exitf(ExitError, "the receiver did not acknowledge the test event")
			}
			return nil
		}}
	r.flags(cmd, e, true)
	return cmd
}
