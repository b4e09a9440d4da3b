// Checks a Grafana dashboard as Grafana's own schema reads it, and reports what it queries.
//
//	dashboard-check DASHBOARD.json   # prints {"variables":[…],"panels":[…]} on stdout, or fails
//
// The dashboard is decoded strictly into the Grafana Foundation SDK's types, which are generated from
// Grafana's dashboard schema and its panel and data source plugins' schemas: an unknown or mistyped
// field, a missing required one, a panel type or panel options Grafana does not define, or a query
// that is not a Prometheus query is an error, as is any violation of the schema's constraints. Every
// PromQL expression (panel targets and label_values() variables), with Grafana's interval variables
// replaced by a duration, is parsed by Prometheus' own parser, and the metric names it selects are
// reported; a selector without a metric name, or a reference to a variable the dashboard does not
// define, is an error.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type query struct {
	RefID   string   `json:"refId"`
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Queries []query `json:"queries"`
}

type variable struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Query   string   `json:"query,omitempty"`
	Metrics []string `json:"metrics,omitempty"`
}

type report struct {
	Variables []variable `json:"variables"`
	Panels    []panel    `json:"panels"`
}

// Grafana's own interval variables; a duration stands in for them so that the parser sees PromQL.
var intervalVariable = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?`)

// $name, ${name}, ${name:format} and [[name]], as Grafana interpolates them.
var variableRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(:[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]`)

// label_values(SELECTOR, LABEL), the Prometheus data source's variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

var promql = parser.NewParser(parser.Options{})

// The dashboard's template variables by name, with their type.
type variables map[string]dashboard.VariableType

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check DASHBOARD.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	out, err := check(raw)
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dashboard-check:", err)
	os.Exit(1)
}

func check(raw []byte) (report, error) {
	plugins.RegisterDefaultPlugins()
	var board dashboard.Dashboard
	if err := sdkError(board.UnmarshalJSONStrict(raw)); err != nil {
		return report{}, fmt.Errorf("not a dashboard by Grafana's schema: %w", err)
	}
	if err := sdkError(board.Validate()); err != nil {
		return report{}, fmt.Errorf("the dashboard breaks a constraint of Grafana's schema: %w", err)
	}
	var out report
	var errs []error
	defined := variables{}
	for _, v := range board.Templating.List {
		defined[v.Name] = v.Type
	}
	for _, v := range board.Templating.List {
		checked, err := checkVariable(v, defined)
		errs = append(errs, err)
		out.Variables = append(out.Variables, checked)
	}
	panels, err := decodePanels(raw)
	if err != nil {
		return out, err
	}
	ids := map[uint32]string{}
	for _, p := range panels {
		checked, err := checkPanel(p, defined)
		errs = append(errs, err)
		if other, seen := ids[p.id]; seen {
			errs = append(errs, fmt.Errorf("panels %q and %q share the id %d", other, checked.Title, p.id))
		}
		ids[p.id] = checked.Title
		out.Panels = append(out.Panels, checked)
	}
	return out, errors.Join(errs...)
}

// The SDK returns its list of errors as an error even when the list is empty.
func sdkError(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

// A panel as the SDK reads it, with its queries read apart: the SDK's strict reading reports every
// error of a panel and of its queries, but leaves out the panels (and a panel's queries) that it read
// without error, as its per-variant readers return an empty error list as a non-nil error.
type decodedPanel struct {
	dashboard.Panel
	id      uint32
	queries []prometheus.Dataquery
}

type rawPanel struct {
	Type    string            `json:"type"`
	ID      uint32            `json:"id"`
	Panels  []json.RawMessage `json:"panels"`
	Targets []json.RawMessage `json:"targets"`
}

// The panels of the dashboard and of its rows, in order.
func decodePanels(raw []byte) ([]decodedPanel, error) {
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	var out []decodedPanel
	var errs []error
	for _, item := range top.Panels {
		var head rawPanel
		if err := json.Unmarshal(item, &head); err != nil {
			return nil, err
		}
		if head.Type != "row" {
			p, err := decodePanel(item)
			errs = append(errs, err)
			out = append(out, p)
			continue
		}
		var row dashboard.RowPanel
		errs = append(errs, sdkError(row.UnmarshalJSONStrict(item)))
		for _, nested := range head.Panels {
			p, err := decodePanel(nested)
			errs = append(errs, err)
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

func decodePanel(raw []byte) (decodedPanel, error) {
	var head rawPanel
	if err := json.Unmarshal(raw, &head); err != nil {
		return decodedPanel{}, err
	}
	out := decodedPanel{id: head.ID}
	if err := sdkError(out.Panel.UnmarshalJSONStrict(raw)); err != nil {
		return out, err
	}
	if err := sdkError(out.Panel.Validate()); err != nil {
		return out, err
	}
	for i, target := range head.Targets {
		var q prometheus.Dataquery
		if err := sdkError(q.UnmarshalJSONStrict(target)); err != nil {
			return out, fmt.Errorf("target %d is not a Prometheus query: %w", i, err)
		}
		if err := sdkError(q.Validate()); err != nil {
			return out, fmt.Errorf("target %d: %w", i, err)
		}
		out.queries = append(out.queries, q)
	}
	return out, nil
}

func checkPanel(p decodedPanel, defined variables) (panel, error) {
	out := panel{Type: p.Type}
	if p.Title != nil {
		out.Title = *p.Title
	}
	where := fmt.Sprintf("panel %q", out.Title)
	if _, known := cog.ConfigForPanelcfgVariant(p.Type); !known {
		return out, fmt.Errorf("%s: Grafana has no panel type %q", where, p.Type)
	}
	if p.GridPos == nil {
		return out, fmt.Errorf("%s: no gridPos", where)
	}
	if err := checkDatasource(where, p.Datasource, defined); err != nil {
		return out, err
	}
	if len(p.queries) == 0 {
		return out, fmt.Errorf("%s: no queries", where)
	}
	var errs []error
	for _, q := range p.queries {
		checked := query{Expr: q.Expr}
		if q.RefId != nil {
			checked.RefID = *q.RefId
		}
		metrics, err := checkExpr(q.Expr, defined)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s, query %s: %w", where, checked.RefID, err))
		}
		checked.Metrics = metrics
		out.Queries = append(out.Queries, checked)
	}
	return out, errors.Join(errs...)
}

// A panel queries a Prometheus data source chosen by a data source variable of the dashboard, so
// that it works with whatever the Prometheus data source of a Grafana is called.
func checkDatasource(where string, ds *common.DataSourceRef, defined variables) error {
	if ds == nil || ds.Type == nil || *ds.Type != "prometheus" {
		return fmt.Errorf("%s: its data source is not of type prometheus", where)
	}
	if ds.Uid == nil {
		return fmt.Errorf("%s: its data source has no uid", where)
	}
	m := variableRef.FindStringSubmatch(*ds.Uid)
	if m == nil || m[0] != *ds.Uid {
		return fmt.Errorf("%s: its data source uid %q is not a data source variable", where, *ds.Uid)
	}
	if name := m[1] + m[3] + m[4]; defined[name] != dashboard.VariableTypeDatasource {
		return fmt.Errorf("%s: $%s is no data source variable of the dashboard", where, name)
	}
	return nil
}

func checkVariable(v dashboard.VariableModel, defined variables) (variable, error) {
	out := variable{Name: v.Name, Type: string(v.Type)}
	where := fmt.Sprintf("variable %q", v.Name)
	if v.Query != nil && v.Query.String != nil {
		out.Query = *v.Query.String
	} else if v.Query != nil && v.Query.Map != nil {
		out.Query, _ = v.Query.Map["query"].(string)
	}
	switch v.Type {
	case dashboard.VariableTypeDatasource:
		// A data source variable's query is the plugin whose data sources it offers.
		if out.Query != "prometheus" {
			return out, fmt.Errorf("%s: offers data sources of %q, not prometheus", where, out.Query)
		}
		return out, nil
	case dashboard.VariableTypeQuery:
	default:
		return out, nil
	}
	m := labelValues.FindStringSubmatch(out.Query)
	if m == nil {
		return out, fmt.Errorf("%s: %q is not label_values(SELECTOR, LABEL)", where, out.Query)
	}
	metrics, err := checkExpr(m[1], defined)
	if err != nil {
		return out, fmt.Errorf("%s: %w", where, err)
	}
	out.Metrics = metrics
	return out, nil
}

// Parses expr as Prometheus would once Grafana has interpolated it; returns the metric names it selects.
func checkExpr(expr string, defined variables) ([]string, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("an empty expression")
	}
	for _, m := range variableRef.FindAllStringSubmatch(expr, -1) {
		name := m[1] + m[3] + m[4]
		if !strings.HasPrefix(name, "__") && defined[name] == "" {
			return nil, fmt.Errorf("$%s is no variable of the dashboard", name)
		}
	}
	parsed, err := promql.ParseExpr(intervalVariable.ReplaceAllString(expr, "5m"))
	if err != nil {
		return nil, fmt.Errorf("not PromQL: %w", err)
	}
	names := map[string]bool{}
	var errs []error
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		selector, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := metricName(selector)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s selects no metric by name", selector))
		} else {
			names[name] = true
		}
		return nil
	})
	out := make([]string, 0, len(names))
	for name := range names {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, errors.Join(errs...)
}

func metricName(selector *parser.VectorSelector) string {
	if selector.Name != "" {
		return selector.Name
	}
	for _, m := range selector.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}
