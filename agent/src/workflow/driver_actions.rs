//! The workflow task's actions: carrying out what the election, the join coordinator and
//! the follower ask for (RPCs to peers, microk8s commands, journal events).

use super::*;

impl Workflow {
    pub(super) fn on_election(&mut self, out: election::Output) {
        use election::Output as O;
        match out {
            O::Persist(hs) => {
                let text = format!("{} {}\n", hs.voted_term, hs.voted_for.unwrap_or_default());
                let path = self.setup.data_dir.join("election-vote");
                let tmp = path.with_extension("tmp");
                // The vote must be durable before the reply that depends on it goes out.
                if let Err(e) =
                    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path))
                {
                    log::error!(
                        "cannot persist the election vote to {}: {e}",
                        path.display()
                    );
                }
            }
            O::SendClaim { to, claim } => {
                let Some(mut client) = self.addr_of(&to).and_then(|a| self.client(&a)) else {
                    return;
                };
                let req = rpc::claim_to_pb(&self.setup.cluster, &self.setup.node_id, &claim);
                let tx = self.tx.clone();
                self.tracker.spawn(async move {
                    let reply = match client.claim(req).await {
                        Ok(r) => Some(rpc::reply_from_pb(r.into_inner())),
                        Err(_) => None,
                    };
                    let _ = tx.send(Command::ClaimAnswer { from: to, reply }).await;
                });
            }
            O::SendClaimReply { to, reply } => {
                if let Some(tx) = self.pending_claims.remove(&to) {
                    let _ = tx.send(rpc::reply_to_pb(&reply));
                }
            }
            O::ClaimStarted { term, .. } => self.emit(
                Level::Info,
                Event::ClaimStarted,
                "",
                format!("claiming the entry point for term {term}"),
            ),
            O::ClaimFailed { term, reason } => {
                log::debug!("claim of term {term} failed: {reason:?}")
            }
            O::BecameEntry { term } => {
                // Start from the facts of the last periodic probe (at most `poll_interval`
                // old) rather than idle until a new one returns: the first grant is on the
                // critical path of a formation, and the fresh probe follows at once.
                if let Some(cf) = facts::cluster_facts(&self.facts, &self.views) {
                    let now = self.now();
                    self.coordinator
                        .handle(now, formation::EntryInput::Facts(cf));
                }
                self.probe_soon();
                self.emit(
                    Level::Info,
                    Event::EntryElected,
                    &self.setup.node_name.clone(),
                    format!("this node is the entry point (term {term})"),
                );
            }
            O::SteppedDown { term, reason } => self.emit(
                Level::Info,
                Event::EntrySteppedDown,
                "",
                format!("stepped down as entry point of term {term}: {reason:?}"),
            ),
            O::Following { entry, term } => {
                let name = self
                    .members
                    .iter()
                    .find(|m| m.id == entry)
                    .map(|m| m.name.clone())
                    .unwrap_or(entry);
                self.emit(
                    Level::Info,
                    Event::EntryFollowed,
                    &name,
                    format!("following entry point {name} (term {term})"),
                );
            }
            O::Unfollowed { entry, term } => {
                log::debug!("no longer following {entry} (term {term})")
            }
            O::Announce {
                entry_term,
                followed,
            } => self.announce = (entry_term, followed),
            O::Conflict(c) => {
                let text = format!(
                    "{} microk8s clusters among the members ({}); neither is torn down: make the nodes of the smaller one run `muster leave` (or `microk8s leave`) to join the larger",
                    c.clusters.len(),
                    c.clusters
                        .iter()
                        .map(|x| format!("{} with {} node(s)", x.cluster_id, x.size))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.emit(Level::Warn, Event::ClusterConflict, "", text.clone());
                self.conflict = Some(text);
            }
            O::ConflictCleared => self.conflict = None,
        }
    }

    pub(super) fn on_entry(&mut self, out: formation::EntryOutput) {
        use formation::EntryOutput as O;
        let m8s = self.setup.microk8s.clone();
        let tx = self.tx.clone();
        match out {
            O::AddNode {
                follower,
                token,
                ttl,
            } => {
                self.tracker.spawn(async move {
                    let result = match JoinToken::new(token) {
                        Ok(t) => m8s
                            .add_node(&t, TokenTtl::Expires(ttl))
                            .await
                            .map(|o| o.urls.iter().map(|u| u.expose()).collect())
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(Command::AddNode { follower, result }).await;
                });
            }
            O::RemoveNode { name, force } => {
                self.tracker.spawn(async move {
                    let (ok, detail) = match m8s.remove_node(&name, force).await {
                        Ok(o) => (true, format!("{o:?}")),
                        Err(e) => (false, e.to_string()),
                    };
                    let _ = tx.send(Command::Removed { name, ok, detail }).await;
                });
            }
            O::RefreshFacts => self.probe_soon(),
            O::Granted { name, role, .. } => {
                self.serving = true;
                self.verify_poll = None;
                self.probe_soon();
                self.emit(
                    Level::Info,
                    Event::JoinGranted,
                    &name,
                    format!("granted {name} a join as {}", rpc::role_word(role)),
                )
            }
            O::Joined { name, role, .. } => {
                self.serving = false;
                self.verify_poll = None;
                self.emit(
                    Level::Info,
                    Event::NodeJoined,
                    &name,
                    format!("{name} joined as {} (verified)", rpc::role_word(role)),
                )
            }
            O::JoinFailed { name, reason, .. } => {
                self.serving = false;
                self.verify_poll = None;
                self.emit(
                    Level::Warn,
                    Event::JoinFailed,
                    &name,
                    format!("join of {name} failed: {reason:?}"),
                )
            }
            O::Removed { name } => self.emit(
                Level::Info,
                Event::NodeRemoved,
                &name,
                format!("removed {name} from the cluster"),
            ),
            O::RemoveFailed { name, detail } => self.emit(
                Level::Warn,
                Event::RemoveFailed,
                &name,
                format!("removing {name} failed: {detail}"),
            ),
            O::Blocked(b) => {
                let text = format!("joins are blocked: {b:?}");
                self.emit(Level::Warn, Event::JoinsBlocked, "", text.clone());
                self.blocked = Some(text);
            }
            O::Unblocked => self.blocked = None,
        }
    }

    pub(super) fn on_follower(&mut self, out: formation::FollowerOutput) {
        use formation::FollowerOutput as O;
        let m8s = self.setup.microk8s.clone();
        let tx = self.tx.clone();
        match out {
            O::WaitReady => {
                self.tracker.spawn(async move {
                    let (ok, detail) = match m8s.status(Some(WAIT_READY)).await {
                        Ok(Status::Running(_)) | Ok(Status::Worker) => (true, String::new()),
                        Ok(other) => (false, format!("microk8s is not ready: {other:?}")),
                        Err(e) => (false, e.to_string()),
                    };
                    let _ = tx.send(Command::Ready { ok, detail }).await;
                });
            }
            O::RequestJoin { entry } => {
                let Some(mut client) = self.addr_of(&entry).and_then(|a| self.client(&a)) else {
                    let _ = self.tx.try_send(Command::JoinAnswer {
                        from: entry,
                        result: Err("the entry point's address is unknown".to_owned()),
                    });
                    return;
                };
                let req = pb::JoinRequestMsg {
                    cluster: self.setup.cluster.clone(),
                    from: self.setup.node_id.clone(),
                    name: self.setup.node_name.clone(),
                    addr: self.setup.advertise.to_string(),
                    preference: rpc::preference_word(self.setup.formation.role).to_owned(),
                    version: self.facts.version.clone().unwrap_or_default(),
                };
                self.tracker.spawn(async move {
                    let result = match client.request_join(req).await {
                        Ok(r) => rpc::response_from_pb(r.into_inner()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.message().to_owned()),
                    };
                    let _ = tx
                        .send(Command::JoinAnswer {
                            from: entry,
                            result,
                        })
                        .await;
                });
            }
            O::Join { url, role } => {
                let entry = self
                    .entry_member()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                self.emit(
                    Level::Info,
                    Event::JoinStarted,
                    &entry,
                    format!("joining {entry} as {}", rpc::role_word(role)),
                );
                self.tracker.spawn(async move {
                    let started = Instant::now();
                    let (ok, detail) = match JoinUrl::parse(&url) {
                        Ok(u) => match m8s.join(&u, m8s_role(role)).await {
                            Ok(_) => (true, String::new()),
                            Err(e) => (false, e.to_string()),
                        },
                        Err(e) => (false, e.to_string()),
                    };
                    let took = started.elapsed();
                    let _ = tx.send(Command::JoinDone { ok, detail, took }).await;
                });
            }
            O::Verify { role } => self.verify(role),
            O::Report { entry, ok, detail } => {
                if let Some(mut client) = self.addr_of(&entry).and_then(|a| self.client(&a)) {
                    let req = pb::JoinReportMsg {
                        cluster: self.setup.cluster.clone(),
                        from: self.setup.node_id.clone(),
                        ok,
                        detail,
                    };
                    self.tracker.spawn(async move {
                        // Fire and forget: the entry point also verifies on its own.
                        let _ = client.report_join(req).await;
                    });
                }
            }
            O::LeaveOtherCluster => {
                self.tracker.spawn(async move {
                    let (ok, detail) = match m8s.leave().await {
                        Ok(()) => (true, String::new()),
                        Err(e) => (false, e.to_string()),
                    };
                    let _ = tx.send(Command::LeftOther { ok, detail }).await;
                });
            }
            O::Phase(p) => {
                if p == formation::Phase::Joined {
                    let name = self.setup.node_name.clone();
                    self.emit(
                        Level::Info,
                        Event::NodeJoined,
                        &name,
                        "this node joined the cluster (verified)".to_owned(),
                    );
                }
                if let formation::Phase::Failed {
                    attempt, reason, ..
                } = &p
                {
                    let attempt = attempt.to_string();
                    self.events.emit(
                        Level::Warn,
                        Event::JoinFailed,
                        &self.setup.node_name,
                        &[(Field::Attempt, &attempt)],
                        format!("join attempt {attempt} failed: {reason:?}; retrying with backoff"),
                    );
                }
                self.phase = p;
            }
            O::Refused(rs) => {
                self.refusals = rs.iter().map(ToString::to_string).collect();
                let text = self.refusals.join("; ");
                self.emit(
                    Level::Warn,
                    Event::JoinRefused,
                    "",
                    format!("not joining: {text}"),
                );
            }
            O::RefusalCleared => self.refusals.clear(),
        }
    }

    /// Polls until this node is verified joined (or the verify timeout passes).
    pub(super) fn verify(&mut self, role: JoinRole) {
        let m8s = self.setup.microk8s.clone();
        let tx = self.tx.clone();
        let mut snap = self.snapshot_rx.clone();
        let entry_id = self.entry_member().map(|m| m.id.clone());
        let name = self.setup.node_name.clone();
        let ip = self.setup.advertise.ip();
        let limit = self.setup.formation.verify_timeout;
        self.tracker.spawn(async move {
            let started = Instant::now();
            let mut last = String::from("not checked yet");
            // Soon after the join first (the node is often Ready at once), then less often.
            let mut pause = VERIFY_POLL;
            while started.elapsed() < limit {
                let entry = snap
                    .borrow_and_update()
                    .members
                    .iter()
                    .find(|m| Some(&m.id) == entry_id.as_ref())
                    .cloned();
                let by_entry = entry
                    .as_ref()
                    .map(|e| facts::verified_by_entry(e, &name, Some(ip), m8s_role(role)))
                    .unwrap_or_else(|| Err("the entry point is not in the view".to_owned()));
                let local = match role {
                    // A control plane can check itself: Ready and in the datastore lines.
                    JoinRole::ControlPlane => match (m8s.nodes().await, m8s.status(None).await) {
                        (Ok(nodes), Ok(status)) => crate::microk8s::verify_joined(
                            &nodes,
                            Some(&status),
                            &Expected {
                                name: &name,
                                ip,
                                role: M8sRole::ControlPlane,
                            },
                        )
                        .map_err(|e| format!("{e:?}")),
                        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                    },
                    JoinRole::Worker => match m8s.status(None).await {
                        Ok(Status::Worker) => Ok(()),
                        Ok(other) => Err(format!("microk8s does not act as a worker: {other:?}")),
                        Err(e) => Err(e.to_string()),
                    },
                };
                match local.and(by_entry) {
                    Ok(()) => {
                        let _ = tx
                            .send(Command::Verified {
                                ok: true,
                                detail: String::new(),
                            })
                            .await;
                        return;
                    }
                    Err(e) => last = e,
                }
                tokio::time::sleep(pause).await;
                pause = next_verify_poll(pause);
            }
            // A join that exited 0 but never completed leaves microk8s half-joined (not
            // ready, its own datastore discarded): `microk8s leave` resets it to a standalone
            // node so that the retry starts clean.
            let reset = match m8s.leave().await {
                Ok(()) => "microk8s reset with `microk8s leave`".to_owned(),
                Err(e) => format!("`microk8s leave` to reset it failed: {e}"),
            };
            let detail = format!(
                "not verified within {}: {last}; {reset}",
                humantime::format_duration(limit)
            );
            let _ = tx.send(Command::Verified { ok: false, detail }).await;
        });
    }
}
