//! What cxr changes in datafusion-postgres's `pg_catalog`: the server's settings, as
//! `current_setting(name)` answers them and as rows of `pg_settings` (pgjdbc reads
//! `max_index_keys` there before it lists a table's foreign keys; the catalog has
//! one row of its own), one database, `cxr`, in `pg_database` (psql's `\l`; the
//! catalog lists DataFusion's catalog `datafusion` and a `postgres` of its own), and
//! the built-in views in `pg_views`.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

/// The server's settings, by PostgreSQL's names.
pub const SETTINGS: [(&str, &str); 15] = [
    ("server_version", "15.0"),
    ("server_version_num", "150000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("search_path", "\"$user\", public"),
    ("default_table_access_method", "heap"),
    ("default_transaction_read_only", "on"),
    ("transaction_read_only", "on"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("is_superuser", "off"),
];

/// Replaces `pg_settings` and `pg_database` in the `pg_catalog` schema of `catalog`:
/// one row per [`SETTINGS`] (its columns as datafusion-postgres defines them; those
/// cxr has no value for are NULL), and one database, `database`, for the catalog
/// every table is in.
pub async fn with_settings_and_database(
    ctx: &SessionContext,
    catalog: &str,
    database: &str,
    owner: &str,
) -> Result<()> {
    let Some(catalog_provider) = ctx.catalog(catalog) else {
        return Ok(());
    };
    let Some(pg_catalog) = catalog_provider.schema("pg_catalog") else {
        return Ok(());
    };
    let mut replaced: Vec<(&'static str, Arc<dyn TableProvider>)> = Vec::new();
    if let Some(original) = pg_catalog.table("pg_settings").await? {
        replaced.push(("pg_settings", settings(original.schema())?));
    }
    if let Some(original) = pg_catalog.table("pg_views").await? {
        let public = catalog_provider.schema("public");
        replaced.push(("pg_views", views(original.schema(), public, owner).await?));
    }
    if !pg_catalog.table_exist("pg_cursors") {
        replaced.push(("pg_cursors", no_cursors()?));
    }
    if pg_catalog.table_exist("pg_database") {
        // The catalog's own row, renamed: its oid stays the one the catalog gives it.
        let rows = ctx
            .sql(&format!(
                "SELECT * REPLACE ('{database}' AS datname) FROM {catalog}.pg_catalog.pg_database WHERE datname = '{catalog}'"
            ))
            .await?;
        replaced.push(("pg_database", rows.into_view()));
    }
    catalog_provider.register_schema(
        "pg_catalog",
        Arc::new(Replaced {
            catalog: pg_catalog,
            replaced,
        }),
    )?;
    Ok(())
}

/// `pg_settings`'s rows: one per [`SETTINGS`].
fn settings(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    // datafusion-postgres spells PostgreSQL's `boot_val` `bool_val` (psql's
    // `\dconfig` reads `boot_val`).
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "bool_val" => Arc::new(f.as_ref().clone().with_name("boot_val")),
            _ => f.clone(),
        })
        .collect();
    let schema: SchemaRef = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "name" => Arc::new(StringArray::from_iter_values(SETTINGS.iter().map(|s| s.0))) as _,
            "setting" | "reset_val" | "boot_val" => {
                Arc::new(StringArray::from_iter_values(SETTINGS.iter().map(|s| s.1))) as _
            }
            _ => new_null_array(field.data_type(), SETTINGS.len()),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `pg_cursors`, which the catalog lacks, with no rows: psycopg asks it whether a
/// named cursor whose query failed exists before closing it, and the missing
/// table's error aborted the client's transaction. A cursor lives in its
/// connection's portals, which a catalog table shared by every client does not see.
fn no_cursors() -> Result<Arc<dyn TableProvider>> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("statement", DataType::Utf8, true),
        Field::new("is_holdable", DataType::Boolean, true),
        Field::new("is_binary", DataType::Boolean, true),
        Field::new("is_scrollable", DataType::Boolean, true),
        Field::new(
            "creation_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

/// `pg_views`'s rows: the built-in views registered in `public`, with their SQL
/// (the catalog's own table is empty, so SQLAlchemy's `get_view_names` found none).
async fn views(
    schema: SchemaRef,
    public: Option<Arc<dyn SchemaProvider>>,
    owner: &str,
) -> Result<Arc<dyn TableProvider>> {
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(public) = public {
        for name in public.table_names() {
            let Some(table) = public.table(&name).await? else {
                continue;
            };
            if table.table_type() == datafusion::logical_expr::TableType::View
                && let Some(definition) = crate::sql::view_definition(&name)
            {
                rows.push((name, definition));
            }
        }
    }
    rows.sort();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "schemaname" => {
                Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "public"))) as _
            }
            "viewname" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))) as _,
            "viewowner" => Arc::new(StringArray::from_iter_values(rows.iter().map(|_| owner))) as _,
            "definition" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))) as _,
            _ => new_null_array(field.data_type(), rows.len()),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// datafusion-postgres's `pg_catalog`, but for the tables cxr replaces.
#[derive(Debug)]
struct Replaced {
    catalog: Arc<dyn SchemaProvider>,
    replaced: Vec<(&'static str, Arc<dyn TableProvider>)>,
}

#[async_trait]
impl SchemaProvider for Replaced {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.catalog.table_names();
        for (name, _) in &self.replaced {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some((_, table)) = self
            .replaced
            .iter()
            .find(|(replaced, _)| name.eq_ignore_ascii_case(replaced))
        {
            return Ok(Some(table.clone()));
        }
        self.catalog.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.replaced
            .iter()
            .any(|(replaced, _)| name.eq_ignore_ascii_case(replaced))
            || self.catalog.table_exist(name)
    }
}
