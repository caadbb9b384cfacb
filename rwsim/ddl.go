package rwsim

import (
	"context"
	"fmt"
	"strings"

	"github.com/rwsnap/rwsnap/metastore"
)

// DDL on a running simulated cluster, as the frontend's CREATE, DROP and
// ALTER reach the meta store: catalog rows, fragments and hummock table
// registration change together, written before the next Advance.

func (c *Cluster) byName(name string) *Relation {
	for _, r := range c.relations {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// CreateMaterializedView runs CREATE MATERIALIZED VIEW name AS ... reading
// from the upstream relations (by name); definition is the statement.
func (c *Cluster) CreateMaterializedView(ctx context.Context, name, definition string, upstream ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byName(name) != nil {
		return fmt.Errorf("rwsim: relation %q already exists", name)
	}
	var ups []*Relation
	for _, u := range upstream {
		r := c.byName(u)
		if r == nil {
			return fmt.Errorf("rwsim: relation %q not found", u)
		}
		ups = append(ups, r)
	}
	c.createJobOn(KindMaterializedView, name, 1, c.epochAt(c.opts.Now()), definition, ups)
	c.groupsChanged = true
	return c.flush(ctx)
}

// DropMaterializedView runs DROP MATERIALIZED VIEW name.
func (c *Cluster) DropMaterializedView(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.byName(name)
	if r == nil || r.Kind != KindMaterializedView {
		return fmt.Errorf("rwsim: materialized view %q not found", name)
	}
	c.dropJob(c.jobs[r.ID])
	c.groupsChanged = true
	return c.flush(ctx)
}

// AddColumn runs ALTER TABLE table ADD COLUMN: RisingWave rewrites the
// stored definition with the new column, appends the column catalog and
// bumps the table's TableVersion.
func (c *Cluster) AddColumn(ctx context.Context, table string, col Column) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.byName(table)
	if r == nil || r.Kind != KindTable {
		return fmt.Errorf("rwsim: table %q not found", table)
	}
	j := c.jobs[r.ID]
	open := strings.LastIndexByte(r.Definition, ')')
	if open < 0 {
		return fmt.Errorf("rwsim: cannot alter the definition of %q", table)
	}
	r.Definition = r.Definition[:open] + ", " + col.Name + " " + strings.ToUpper(col.Type) + r.Definition[open:]
	r.Columns = append(r.Columns, col)
	r.SchemaVersion++
	c.putCatalog(metastore.CFTable, r.ID, tableValue(r, 1, j.fragment, j.deps, r.CreatedEpoch))
	c.notification++
	return c.flush(ctx)
}
