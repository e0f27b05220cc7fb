//! The PostgreSQL side of the store's database (feature `postgres`): the synchronous
//! `postgres` client, without TLS (a store on localhost or a private network; say so in a URL
//! with `sslmode=disable` or leave it to the default, which tries plain text).

use anyhow::{bail, Context, Result};
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row};

use super::database::{Database, Dialect, Value};

pub struct Postgres {
    client: Client,
}

impl Postgres {
    pub fn connect(url: &str) -> Result<Postgres> {
        let client = Client::connect(url, NoTls).with_context(|| {
            format!(
                "results store {}: cannot connect",
                super::hide_password(url)
            )
        })?;
        Ok(Postgres { client })
    }
}

fn boxed(params: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                Value::Int(v) => Box::new(*v),
                Value::Real(v) => Box::new(*v),
                Value::Text(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

fn column(row: &Row, i: usize) -> Result<Value> {
    let ty = row.columns()[i].type_();
    Ok(if *ty == Type::INT8 {
        Value::Int(row.try_get(i)?)
    } else if *ty == Type::INT4 {
        Value::Int(row.try_get::<_, i32>(i)?.into())
    } else if *ty == Type::FLOAT8 {
        Value::Real(row.try_get(i)?)
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
        Value::Text(row.try_get(i)?)
    } else {
        bail!("the store holds a column of type {ty} where none belongs")
    })
}

impl Database for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let owned = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref()).collect();
        Ok(self.client.execute(sql, &refs)?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let owned = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref()).collect();
        let rows = self.client.query(sql, &refs)?;
        rows.iter()
            .map(|row| (0..row.len()).map(|i| column(row, i)).collect())
            .collect()
    }
}
