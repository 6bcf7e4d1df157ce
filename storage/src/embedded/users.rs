//! Accounts in the embedded store: users by id, plus the email and username index tables that
//! keep both unique.

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};

use super::tables::{USER_EMAILS, USER_NAMES, USERS};
use super::{EmbeddedStore, backend, get_json, to_json};
use crate::model::User;
use crate::records::UserStore;
use crate::{Error, Result};

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        let user = user.clone();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            let mut emails = txn.open_table(USER_EMAILS).map_err(backend)?;
            let mut names = txn.open_table(USER_NAMES).map_err(backend)?;
            if users.get(user.id.as_str()).map_err(backend)?.is_some() {
                return Err(Error::Duplicate { field: "id" });
            }
            // An error rolls the whole transaction back, so nothing half-inserted stays.
            ensure_free(&emails, &user.email, &user.id, "email")?;
            ensure_free(&names, &user.username, &user.id, "username")?;
            emails.insert(user.email.as_str(), user.id.as_str()).map_err(backend)?;
            names.insert(user.username.as_str(), user.id.as_str()).map_err(backend)?;
            users.insert(user.id.as_str(), to_json(&user)?.as_slice()).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        self.record(USERS, id).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.read(move |txn| user_by_key(txn, USER_EMAILS, &email)).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let username = username.to_owned();
        self.read(move |txn| user_by_key(txn, USER_NAMES, &username)).await
    }

    async fn replace_user(&self, user: &User) -> Result<bool> {
        let user = user.clone();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).map_err(backend)?;
            let mut emails = txn.open_table(USER_EMAILS).map_err(backend)?;
            let mut names = txn.open_table(USER_NAMES).map_err(backend)?;
            let Some(old) = get_json::<User>(&users, &user.id)? else {
                return Ok(false);
            };
            ensure_free(&emails, &user.email, &user.id, "email")?;
            ensure_free(&names, &user.username, &user.id, "username")?;
            move_key(&mut emails, &old.email, &user.email, &user.id)?;
            move_key(&mut names, &old.username, &user.username, &user.id)?;
            users.insert(user.id.as_str(), to_json(&user)?.as_slice()).map_err(backend)?;
            Ok(true)
        })
        .await
    }
}

/// The user an index table (email or username) points `key` at.
fn user_by_key(
    txn: &ReadTransaction,
    index: TableDefinition<&'static str, &'static str>,
    key: &str,
) -> Result<Option<User>> {
    let index = txn.open_table(index).map_err(backend)?;
    let Some(id) = index.get(key).map_err(backend)? else {
        return Ok(None);
    };
    get_json(&txn.open_table(USERS).map_err(backend)?, id.value())
}

/// Refuses `key` if the index gives it to a user other than `owner`.
fn ensure_free(
    index: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
    owner: &str,
    field: &'static str,
) -> Result<()> {
    match index.get(key).map_err(backend)? {
        Some(holder) if holder.value() != owner => Err(Error::Duplicate { field }),
        _ => Ok(()),
    }
}

/// Points the index at `owner` under `new` instead of `old` (the user changed email or username).
fn move_key(index: &mut Table<&'static str, &'static str>, old: &str, new: &str, owner: &str) -> Result<()> {
    index.remove(old).map_err(backend)?;
    index.insert(new, owner).map_err(backend)?;
    Ok(())
}
