//! Calling Python from engine tasks: plain functions are called on the tokio
//! thread with the GIL held for the call only; coroutines run on the asyncio
//! loop that awaits the stream, and the engine task awaits their result
//! without the GIL.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

/// The asyncio loop of the `Stream.run()` call, set when the stream starts.
pub type LoopSlot = Arc<Mutex<Option<Py<PyAny>>>>;

/// Calls `make()` with the GIL; when it returns a coroutine, runs it on the
/// stream's loop and waits for its result.
pub async fn call<F>(event_loop: &LoopSlot, make: F) -> PyResult<Py<PyAny>>
where
    F: FnOnce(Python<'_>) -> PyResult<Py<PyAny>>,
{
    let pending = Python::with_gil(|py| -> PyResult<Result<Py<PyAny>, Pending>> {
        let value = make(py)?;
        let bound = value.bind(py);
        if !is_coroutine(py, bound)? {
            return Ok(Ok(value));
        }
        let event_loop = event_loop.lock().unwrap().as_ref().map(|l| l.clone_ref(py)).ok_or_else(|| {
            PyRuntimeError::new_err("a coroutine needs the asyncio loop of Stream.run(); the stream is not running")
        })?;
        Ok(Err(schedule(py, value, event_loop)?))
    })?;
    match pending {
        Ok(value) => Ok(value),
        Err(pending) => pending.wait().await,
    }
}

fn is_coroutine(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
    let inspect = py.import("inspect")?;
    inspect.call_method1("isawaitable", (value,))?.extract()
}

/// A coroutine scheduled on a loop: a `concurrent.futures.Future` and a
/// channel its done-callback fires.
struct Pending {
    future: Py<PyAny>,
    done: tokio::sync::oneshot::Receiver<()>,
}

fn schedule(py: Python<'_>, coroutine: Py<PyAny>, event_loop: Py<PyAny>) -> PyResult<Pending> {
    let asyncio = py.import("asyncio")?;
    let awaitable = py.import("streamkit._aio")?.call_method1("as_coroutine", (coroutine,))?;
    let future = asyncio.call_method1("run_coroutine_threadsafe", (awaitable, event_loop))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let on_done = PyCFunction::new_closure(py, None, None, move |_args, _kwargs| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    })?;
    future.call_method1("add_done_callback", (on_done,))?;
    Ok(Pending { future: future.unbind(), done: rx })
}

impl Pending {
    async fn wait(self) -> PyResult<Py<PyAny>> {
        let _ = self.done.await;
        Python::with_gil(|py| self.future.bind(py).call_method0("result").map(Bound::unbind))
    }
}
