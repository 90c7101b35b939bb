package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/ical"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/window"
)

// newBudgetCmd manages fleet disruption budgets. "budgets" is the same
// command.
func newBudgetCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "budget", Aliases: []string{"budgets"},
		Short: "Manage fleet disruption budgets: how many machines may be unavailable at once, across all rollouts", Args: noArgs,
		Long: `A fleet disruption budget bounds every rollout together: at most
--max-unavailable (a count, or a percent rounded up) of the nodes its
selector matches may be in flight at once, in each domain of the --per
label when given. Every rollout counts against every budget covering its
nodes, besides its own caps; a node waiting for one says so:
  waits: fleet budget prod-web zone=a at 2/2, held by a1 (r-9), a3 (r-12)
Creating a budget needs the operator role; changing or deleting one, which
may loosen it, needs admin. Every change is audited.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newBudgetPutCmd(e, false), newBudgetPutCmd(e, true), newBudgetListCmd(e), newBudgetGetCmd(e),
		newDeleteCmd(e, "budget", func(c *api.Client, cmd *cobra.Command, name string) error { return c.DeleteBudget(cmd.Context(), name) }))
	return cmd
}

func newBudgetPutCmd(e *env, update bool) *cobra.Command {
	var r remote
	var req api.BudgetRequest
	use, short := "create NAME --max-unavailable N|P% [--selector EXPR] [--per LABEL]", "Create a fleet disruption budget"
	if update {
		use, short = "update NAME --max-unavailable N|P% [--selector EXPR] [--per LABEL]", "Replace a fleet disruption budget (admin only)"
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: exactArgs(1, "a budget name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.MaxUnavailable == "" {
				return usagef("%s: --max-unavailable is required", cmd.CommandPath())
			}
			req.Name = args[0]
			c, err := r.client(e)
			if err != nil {
				return err
			}
			var b api.Budget
			if update {
				cur, err := c.GetBudget(cmd.Context(), req.Name)
				if err != nil {
					return apiErr(err)
				}
				b, err = c.UpdateBudget(cmd.Context(), cur.Version, req)
				if err != nil {
					return apiErr(err)
				}
			} else if b, err = c.CreateBudget(cmd.Context(), req); err != nil {
				return apiErr(err)
			}
			return r.show(e, b, func(w io.Writer) {
				verb := "created"
				if update {
					verb = "updated"
				}
				fmt.Fprintf(w, "budget %s %s (version %d): max unavailable %s%s\n", b.Name, verb, b.Version, b.MaxUnavailable, perText(b.Per))
				budgetDomains(w, b)
			})
		}}
	f := cmd.Flags()
	f.StringVar(&req.MaxUnavailable, "max-unavailable", "", `nodes that may be in flight at once: a count ("2") or a percent ("25%")`)
	f.StringVar(&req.Selector, "selector", "", "CEL selector of the nodes the budget covers (default every node)")
	f.StringVar(&req.Per, "per", "", "label (or fact path) splitting the budget into domains, e.g. zone")
	r.flags(cmd, e, true)
	return cmd
}

func perText(per string) string {
	if per == "" {
		return ""
	}
	return " per " + per
}

func budgetDomains(w io.Writer, b api.Budget) {
	for _, d := range b.Domains {
		name := "(all)"
		if b.Per != "" {
			name = b.Per + "=" + d.Domain
		}
		fmt.Fprintf(w, "  %s\t%d/%d in use\t%d nodes\t%s\n", name, d.InUse, d.Limit, d.Nodes, holdersText(d.Holders))
	}
}

func holdersText(hs []api.Hold) string {
	if len(hs) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s (%s %s)", h.Node, h.Kind, h.Holder))
	}
	return strings.Join(parts, ", ")
}

func newBudgetListCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "list", Short: "List fleet disruption budgets with their use per domain", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			list, err := c.ListBudgets(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tMAX UNAVAILABLE\tPER\tIN USE\tSELECTOR")
				for _, b := range list.Budgets {
					var use []string
					for _, d := range b.Domains {
						u := fmt.Sprintf("%d/%d", d.InUse, d.Limit)
						if b.Per != "" {
							u = d.Domain + ":" + u
						}
						use = append(use, u)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", b.Name, b.MaxUnavailable, dash(b.Per), dash(strings.Join(use, " ")), dash(b.Selector))
				}
				fmt.Fprintf(w, "%d budgets\n", len(list.Budgets))
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func newBudgetGetCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a fleet disruption budget and who holds its slots", Args: exactArgs(1, "a budget name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			b, err := c.GetBudget(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, b, func(w io.Writer) {
				fmt.Fprintf(w, "name\t%s\nmax unavailable\t%s%s\nselector\t%s\nversion\t%d\ncreated\t%s by %s\n", b.Name, b.MaxUnavailable,
					perText(b.Per), dash(b.Selector), b.Version, b.CreatedAt.Format(time.RFC3339), b.CreatedBy)
				budgetDomains(w, b)
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func newDeleteCmd(e *env, kind string, del func(c *api.Client, cmd *cobra.Command, name string) error) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a fleet " + kind + " (admin only; audited)", Args: exactArgs(1, "a "+kind+" name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			if err := del(c, cmd, args[0]); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(e.stdout, "%s %s deleted\n", kind, args[0])
			return nil
		}}
	r.flags(cmd, e, false)
	return cmd
}

// dash is s, or "-" when s is empty.
func dash(s string) string { return orDash(s) }

// newFreezeCmd manages fleet freezes. "freezes" is the same command.
func newFreezeCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "freeze", Aliases: []string{"freezes"},
		Short: "Manage fleet freezes: periods when no rollout starts anything (end of quarter, holidays, Patch Tuesday)", Args: noArgs,
		Long: `A fleet freeze applies to every rollout (and to the nodes its optional
selector matches): while it is in force no node starts, and nodes wait
naming it:
  waits: fleet freeze end-of-quarter until 2026-12-31T23:59 Europe/Paris
Freezes are one-off or recurring (iCalendar RRULE) periods in an IANA time
zone, created one by one or imported from an iCalendar file. An admin's
break-glass on a rollout (POST /v1/rollouts/ID/break-glass) overrides them
for that rollout alone, audited. Creating freezes needs the operator role;
deleting one needs admin.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newFreezeCreateCmd(e), newFreezeImportCmd(e), newFreezeListCmd(e), newFreezeGetCmd(e),
		newDeleteCmd(e, "freeze", func(c *api.Client, cmd *cobra.Command, name string) error { return c.DeleteFreeze(cmd.Context(), name) }))
	return cmd
}

func newFreezeCreateCmd(e *env) *cobra.Command {
	var r remote
	var f api.FreezeSpec
	cmd := &cobra.Command{Use: "create NAME --time-zone ZONE --start T --end T [--rule RRULE] [--except T]... [--selector EXPR] [--reason TEXT]",
		Short: "Create a fleet freeze", Args: exactArgs(1, "a freeze name"),
		Long: `Create a fleet freeze. --start and --end are local times in --time-zone
(YYYY-MM-DDTHH:MM, or a date for midnight); --rule repeats the period with
an iCalendar RRULE, e.g. the day after Patch Tuesday every month:
  drover freeze create patch-tuesday --time-zone America/Los_Angeles \
    --start 2026-01-13T10:00 --end 2026-01-14T10:00 --rule 'FREQ=MONTHLY;BYDAY=2TU'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.Name = args[0]
			if f.TimeZone == "" || f.Start == "" || f.End == "" {
				return usagef("freeze create: --time-zone, --start and --end are required")
			}
			if _, err := (window.CalendarSpec{TimeZone: f.TimeZone, Start: f.Start, End: f.End, Rule: f.Rule, Except: f.Except}).Compile(); err != nil {
				return exitf(ExitError, "freeze %s: %w", f.Name, err)
			}
			return createFreezes(cmd, e, &r, []api.FreezeSpec{f})
		}}
	fl := cmd.Flags()
	fl.StringVar(&f.TimeZone, "time-zone", "", "IANA time zone of --start, --end and --except, e.g. Europe/Paris")
	fl.StringVar(&f.Start, "start", "", "local start, YYYY-MM-DDTHH:MM or YYYY-MM-DD")
	fl.StringVar(&f.End, "end", "", "local end (exclusive), YYYY-MM-DDTHH:MM or YYYY-MM-DD")
	fl.StringVar(&f.Rule, "rule", "", "iCalendar RRULE repeating the period, e.g. FREQ=YEARLY or FREQ=MONTHLY;BYDAY=2TU")
	fl.StringArrayVar(&f.Except, "except", nil, "local start of an occurrence to skip (repeatable)")
	fl.StringVar(&f.Selector, "selector", "", "CEL selector of the nodes it applies to (default every node)")
	fl.StringVar(&f.Reason, "reason", "", "why, shown in wait reasons")
	r.flags(cmd, e, true)
	return cmd
}

func createFreezes(cmd *cobra.Command, e *env, r *remote, fs []api.FreezeSpec) error {
	c, err := r.client(e)
	if err != nil {
		return err
	}
	out, err := c.CreateFreezes(cmd.Context(), fs)
	if err != nil {
		return apiErr(err)
	}
	return r.show(e, out, func(w io.Writer) {
		for _, f := range out.Freezes {
			fmt.Fprintf(w, "freeze %s created: %s\n", f.Name, freezeState(f))
		}
	})
}

func freezeState(f api.Freeze) string {
	switch {
	case f.Active && f.Until != nil:
		return "in force until " + localTime(*f.Until, f.TimeZone)
	case f.NextStart != nil && f.NextEnd != nil:
		return "next " + localTime(*f.NextStart, f.TimeZone) + " to " + localTime(*f.NextEnd, f.TimeZone)
	}
	return "over"
}

func localTime(t time.Time, zone string) string {
	if loc, err := time.LoadLocation(zone); err == nil {
		t = t.In(loc)
	}
	return t.Format("2006-01-02T15:04") + " " + zone
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a freeze name from an event summary or UID.
func slug(s string) string {
	s = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 55 {
		s = strings.TrimRight(s[:55], "-")
	}
	return s
}

func newFreezeImportCmd(e *env) *cobra.Command {
	var r remote
	var zone, prefix, selector string
	var dry bool
	cmd := &cobra.Command{Use: "import FILE.ics [--time-zone ZONE] [--prefix P] [--selector EXPR] [--dry-run]",
		Short: "Import the events of an iCalendar file as fleet freezes, all or none",
		Long: `Import every VEVENT of an iCalendar file as a fleet freeze: DTSTART and
DTEND (or DURATION) with their TZID, RRULE (FREQ DAILY/WEEKLY/MONTHLY/
YEARLY, INTERVAL, BYDAY with ordinals such as 2TU, BYMONTHDAY, BYMONTH,
COUNT, UNTIL) and EXDATE. Each freeze is named after the event's SUMMARY
(or UID), with --prefix before it, and its reason is the SUMMARY. A file
with any problem imports nothing and says FILE:LINE: what is wrong.
Floating times and all-day dates are read in --time-zone (default UTC).`,
		Args: exactArgs(1, "an iCalendar file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			evs, err := ical.Parse(filepath.Base(args[0]), data, zone)
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			seen := map[string]int{}
			var fs []api.FreezeSpec
			for _, ev := range evs {
				base := slug(ev.Summary)
				if base == "" {
					base = slug(ev.UID)
				}
				if base == "" {
					base = "event"
				}
				name := slug(prefix + base)
				if seen[name]++; seen[name] > 1 {
					name = fmt.Sprintf("%s-%d", name, seen[name])
				}
				src := fmt.Sprintf("%s:%d", filepath.Base(args[0]), ev.Line)
				if ev.UID != "" {
					src += " " + ev.UID
				}
				fs = append(fs, api.FreezeSpec{Name: name, TimeZone: ev.Spec.TimeZone, Start: ev.Spec.Start, End: ev.Spec.End, Rule: ev.Spec.Rule,
					Except: ev.Spec.Except, Selector: selector, Reason: ev.Summary, Source: src})
			}
			if dry {
				return r.show(e, api.FreezesRequest{Freezes: fs}, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tZONE\tSTART\tEND\tRULE\tSOURCE")
					for _, f := range fs {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.TimeZone, f.Start, f.End, dash(f.Rule), f.Source)
					}
					fmt.Fprintf(w, "%d freezes would be imported (dry run)\n", len(fs))
				})
			}
			return createFreezes(cmd, e, &r, fs)
		}}
	f := cmd.Flags()
	f.StringVar(&zone, "time-zone", "UTC", "zone of floating times and all-day dates")
	f.StringVar(&prefix, "prefix", "", "prefix of the freeze names")
	f.StringVar(&selector, "selector", "", "CEL selector of the nodes the freezes apply to (default every node)")
	f.BoolVar(&dry, "dry-run", false, "show the freezes without creating them")
	r.flags(cmd, e, true)
	return cmd
}

func newFreezeListCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "list", Short: "List fleet freezes: in force now or when next", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			list, err := c.ListFreezes(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSTATE\tRULE\tSELECTOR\tREASON")
				for _, f := range list.Freezes {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Name, freezeState(f), dash(f.Rule), dash(f.Selector), dash(f.Reason))
				}
				fmt.Fprintf(w, "%d freezes\n", len(list.Freezes))
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func newFreezeGetCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a fleet freeze", Args: exactArgs(1, "a freeze name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			f, err := c.GetFreeze(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, f, func(w io.Writer) {
				fmt.Fprintf(w, "name\t%s\nstate\t%s\nperiod\t%s to %s %s\nrule\t%s\nexcept\t%s\nselector\t%s\nreason\t%s\nsource\t%s\nversion\t%d\ncreated\t%s by %s\n",
					f.Name, freezeState(f), f.Start, f.End, f.TimeZone, dash(f.Rule), dash(strings.Join(f.Except, ", ")), dash(f.Selector),
					dash(f.Reason), dash(f.Source), f.Version, f.CreatedAt.Format(time.RFC3339), f.CreatedBy)
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

func sharedText(o api.Overlap) string {
	noun := "target nodes"
	if o.Shared == 1 {
		noun = "target node"
	}
	s := fmt.Sprintf("%d shared %s (%s", o.Shared, noun, strings.Join(o.Nodes, ", "))
	if o.Shared > len(o.Nodes) {
		s += ", ..."
	}
	return s + ")"
}

// overlapNotes says, for a dry run, which active rollouts share target
// nodes with the plan and what creating it would do.
func overlapNotes(w io.Writer, file string, data []byte, os []api.Overlap) {
	if len(os) == 0 {
		return
	}
	refuse := false
	if p, err := plan.Parse(file, data); err == nil {
		refuse = p.Overlap == plan.OverlapRefuse
	}
	for _, o := range os {
		fmt.Fprintf(w, "overlaps rollout %s (%s, %s): %s\n", o.Rollout, o.Name, o.State, sharedText(o))
	}
	if refuse {
		fmt.Fprintln(w, "the plan says overlap: refuse, so creating it now would be refused")
	} else {
		fmt.Fprintln(w, "the shared nodes would wait for those rollouts (overlap: wait)")
	}
}
