//! A TCP proxy on loopback in front of the apiserver, for one operator only: cut, it closes every
//! connection it carries and refuses new ones (as a network partition between that replica and
//! the apiserver would); mended, it forwards again. TLS passes through untouched.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    rt: tokio::runtime::Runtime,
}

impl Proxy {
    /// Forwards 127.0.0.1:<a free port> to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let live = Arc::new(Mutex::new(Vec::new()));
        rt.spawn(accept(listener, target, cut.subscribe(), live.clone()));
        Proxy { addr, cut, live, rt }
    }

    /// Closes every connection and refuses new ones until [`Proxy::mend`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
        let _guard = self.rt.enter();
        for conn in self.live.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn mend(&self) {
        self.cut.send_replace(false);
    }

    /// `kubeconfig` with its server sent through the proxy, written beside it as `name`.
    pub fn kubeconfig(&self, kubeconfig: &str, apiserver_url: &str, name: &str) -> String {
        let text = std::fs::read_to_string(kubeconfig).expect("read the kubeconfig");
        assert!(text.contains(apiserver_url), "{kubeconfig} does not name {apiserver_url}");
        let through = text.replace(apiserver_url, &format!("https://{}", self.addr));
        let path = std::path::Path::new(kubeconfig).with_file_name(name);
        std::fs::write(&path, through).expect("write the kubeconfig");
        path.to_str().unwrap().to_string()
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    cut: watch::Receiver<bool>,
    live: Arc<Mutex<Vec<AbortHandle>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        // Refused: closed at once, before a byte of TLS.
        if *cut.borrow() {
            drop(client);
            continue;
        }
        let task = tokio::spawn(forward(client, target));
        let mut live = live.lock().unwrap();
        live.retain(|t| !t.is_finished());
        live.push(task.abort_handle());
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else { return };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
