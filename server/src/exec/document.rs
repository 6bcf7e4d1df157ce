//! A session's code: the text of its document's `Y.Text` named `code`, read from the room when
//! this node holds it (the live text), else from its stored snapshot.

use crate::exec::SubmitRefusal;
use crate::room::Rooms;

/// The root text type holding a session's code.
pub const CODE_TEXT: &str = "code";

/// The `code` text of `room` (empty when the document has none yet).
pub async fn code_of(rooms: &Rooms, store: &dyn storage::Store, room: &str) -> Result<String, SubmitRefusal> {
    if let Some(open) = rooms.get(room)
        && let Some(text) = open.text(CODE_TEXT)
    {
        return Ok(text);
    }
    let Some(snapshot) = store.load_snapshot(room).await.map_err(SubmitRefusal::Store)? else {
        return Ok(String::new());
    };
    // Decoding a large document is CPU work: off the async workers.
    let decoded = tokio::task::spawn_blocking(move || {
        crdt::RoomDoc::from_snapshot(&snapshot, crdt::Limits::default()).map(|doc| doc.text(CODE_TEXT))
    })
    .await
    .map_err(|error| SubmitRefusal::Document(error.to_string()))?;
    match decoded {
        Ok(text) => Ok(text.unwrap_or_default()),
        Err(error) => Err(SubmitRefusal::Document(error.to_string())),
    }
}
