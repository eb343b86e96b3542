//! [`TestServer`]: runs the API on a loopback port in a background thread with its own tokio
//! runtime, so plain `#[test]` functions and blocking clients can use it.

use std::future::IntoFuture;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use axum::Router;
use tokio::sync::oneshot;

use crate::api::{self, RecordedRequest, ServerState};
use crate::scenario::{Fault, Scenario};

/// A running test server bound to `127.0.0.1`. Dropping it stops the server.
///
/// Besides the faults of its [`Scenario`], a test can take the API away while its client runs:
/// [`TestServer::begin_outage`] answers every request with a fault until
/// [`TestServer::end_outage`], and [`TestServer::stop`] closes the port (connections are
/// refused) until [`TestServer::restart`] opens it again.
pub struct TestServer {
    address: SocketAddr,
    state: Arc<ServerState>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `scenario` on `127.0.0.1` at a free port. Returns once the server is accepting
    /// connections.
    ///
    /// # Panics
    /// If no loopback port can be bound or the runtime cannot start.
    pub fn start(scenario: Scenario) -> TestServer {
        TestServer::start_on_port(scenario, 0)
            .unwrap_or_else(|error| panic!("cannot start the Kalshi test server: {error}"))
    }

    /// Serves `scenario` on `127.0.0.1:port` (0 picks a free port). Returns once the server is
    /// accepting connections, or the error that prevented it (e.g. the port is taken).
    pub fn start_on_port(scenario: Scenario, port: u16) -> io::Result<TestServer> {
        let mut server = TestServer {
            address: (Ipv4Addr::LOCALHOST, port).into(),
            state: Arc::new(ServerState::new(scenario)),
            stop: None,
            thread: None,
        };
        server.listen()?;
        Ok(server)
    }

    /// Binds the server's port (a free one when it is 0) and serves on it from a new thread.
    fn listen(&mut self) -> io::Result<()> {
        let listener = TcpListener::bind(self.address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let app = api::router(Arc::clone(&self.state));
        let (stop, stopped) = oneshot::channel();
        let (ready, is_ready) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("kalshi-test-server-{}", address.port()))
            .spawn(move || serve(listener, app, ready, stopped))?;
        let started = is_ready.recv().unwrap_or_else(|_| {
            Err(io::Error::other(
                "the server thread ended before it was ready",
            ))
        });
        if let Err(error) = started {
            let _ = thread.join();
            return Err(error);
        }
        self.address = address;
        self.stop = Some(stop);
        self.thread = Some(thread);
        Ok(())
    }

    /// Stops serving and closes the port, dropping every connection and request in flight:
    /// until [`TestServer::restart`], connections to the port are refused. What the server
    /// served and recorded is kept. Stopping a stopped server does nothing.
    pub fn stop(&mut self) {
        self.stop_and_join();
    }

    /// Serves again on the same port after [`TestServer::stop`], carrying on with the same
    /// scenario, recorded requests and scan count. Another process may have taken the port
    /// meanwhile; the error says so. Restarting a running server does nothing.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.thread.is_some() {
            return Ok(());
        }
        self.listen()
    }

    /// From now on, answers every request with `fault` (indexed faults included) until
    /// [`TestServer::end_outage`]. Requests are still recorded; none starts a scan.
    ///
    /// # Panics
    /// If the fault cannot be sent (see [`Scenario::fault_on_request`]).
    pub fn begin_outage(&self, fault: Fault) {
        fault.check();
        self.state.set_outage(Some(fault));
    }

    /// Ends an outage begun by [`TestServer::begin_outage`]: requests are served (and faulted
    /// by index) as before it.
    pub fn end_outage(&self) {
        self.state.set_outage(None);
    }

    /// Serves `markets` from the next scan on, as a market that moves while a client runs:
    /// they become the last frame, and scripted frames no scan has reached yet are dropped.
    /// Scans under way finish on their own frame.
    pub fn set_markets(&self, markets: Vec<serde_json::Value>) {
        self.state.set_markets(markets);
    }

    /// The API base URL, e.g. `http://127.0.0.1:41234/trade-api/v2`.
    pub fn base_url(&self) -> String {
        format!("http://{}/trade-api/v2", self.address)
    }

    /// The socket address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every request received so far, in arrival order (faulted ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// How many scans have started: valid `GET /markets` requests without a cursor that were
    /// not answered by a [`Fault`], and those that follow the last empty page of a
    /// [`Fault::EmptyPages`]. A delayed one counts once its delay is over, and not at all if
    /// its client hung up first (the server drops abandoned requests).
    pub fn scans_started(&self) -> usize {
        self.state.scans_started()
    }

    /// Stops the server and joins its thread. Requests still in flight (e.g. delayed ones) are
    /// dropped. Dropping the server does the same.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported there; re-raising it
            // here could abort a test that is itself unwinding.
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Body of the server thread: runs the router until told to stop.
fn serve(
    listener: TcpListener,
    app: Router,
    ready: mpsc::Sender<io::Result<()>>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        // Not a graceful shutdown: a test that stops the server must not wait for a delayed
        // request to finish sleeping.
        tokio::select! {
            result = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .into_future() => {
                if let Err(error) = result {
                    eprintln!("kalshi test server stopped: {error}");
                }
            }
            _ = stopped => {}
        }
    });
    // Dropping the runtime here cancels every connection task still running.
}
