//! What cxr adds to datafusion-postgres's `pg_catalog`: the server's settings, as
//! `current_setting(name)` answers them and as rows of `pg_settings` (pgjdbc reads
//! `max_index_keys` there before it lists a table's foreign keys; the catalog has
//! one row of its own).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
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

/// Replaces `pg_settings` in the `pg_catalog` schema of `catalog` with one row per
/// [`SETTINGS`] (its columns as datafusion-postgres defines them; those cxr has no
/// value for are NULL).
pub async fn with_settings(ctx: &SessionContext, catalog: &str) -> Result<()> {
    let Some(catalog) = ctx.catalog(catalog) else {
        return Ok(());
    };
    let Some(pg_catalog) = catalog.schema("pg_catalog") else {
        return Ok(());
    };
    let Some(original) = pg_catalog.table("pg_settings").await? else {
        return Ok(());
    };
    let schema = original.schema();
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
    let settings: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![vec![batch]])?);
    catalog.register_schema(
        "pg_catalog",
        Arc::new(WithSettings {
            catalog: pg_catalog,
            settings,
        }),
    )?;
    Ok(())
}

/// datafusion-postgres's `pg_catalog`, but for its `pg_settings`.
#[derive(Debug)]
struct WithSettings {
    catalog: Arc<dyn SchemaProvider>,
    settings: Arc<dyn TableProvider>,
}

#[async_trait]
impl SchemaProvider for WithSettings {
    fn table_names(&self) -> Vec<String> {
        self.catalog.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case("pg_settings") {
            return Ok(Some(self.settings.clone()));
        }
        self.catalog.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.table_exist(name)
    }
}
