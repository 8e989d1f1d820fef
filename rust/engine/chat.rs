//! One chat-completions request, start to finish: authenticate, validate, route, try channels
//! in plan order (failing over until the provider's first valid event), relay, meter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::{self, Asker, Taken};
use super::auto;
use super::counts::{self, Count};
use super::error::{ErrorKind, GatewayError};
use super::insurance::{self, Assessment, Facts, INSURANCE_HEADER};
use super::protocol::{Call, Protocol, StreamRelay, Surface, answer_json};
use super::request::Inbound;
use super::routing::{ChannelRoute, ModelRoute, Routing};
use super::steering::{self, Order};
use super::stream::StreamBuffer;
use super::upstream::{self, AttemptError};
use super::usage::UsageEvent;
use super::{
    ATTEMPTS_HEADER, CHANNEL_HEADER, DROPPED_HEADER, Deliver, Engine, Headers, OVERHEAD_HEADER,
    REQUEST_ID_HEADER, Reply, Response, error_response, new_request_id, unix_ms,
};
use crate::client::{self, Body};
use crate::health::Outcome;
use crate::insurance::rules::Rule;
use crate::relay::{self, Observed, relay_json};

/// Largest JSON response we buffer from a provider.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// After `[DONE]`, how long we keep reading so the connection can go back to the pool.
const DRAIN_AFTER_DONE: Duration = Duration::from_secs(1);

struct Context<'a> {
    request_id: String,
    received: Instant,
    created_ms: u64,
    key_id: String,
    account_id: String,
    model: Arc<ModelRoute>,
    req: Inbound<'a>,
    /// The prompt's local token count where it was quick to take, an estimate from the body's
    /// size where it is being counted on the blocking pool (see `counts`).
    local_prompt: u64,
    keepalive: Duration,
    insurance: Arc<[Rule]>,
    retain_content: bool,
    /// How the request wants its channels ordered, the provider its `model:provider` suffix
    /// pins, and the models to fall back to (each with its own pin) when every channel of its
    /// model fails.
    order: Order,
    pinned: Option<String>,
    fallbacks: Vec<Fallback>,
    /// For `zenmux/auto`: the models ranked and why (`auto::MODEL_ROUTING_HEADER`).
    model_routing: Option<String>,
    /// The rate-limit buckets the request took from, and the headers saying where it stands.
    taken: Vec<Taken>,
    rate_headers: Headers,
}

/// A fallback model, with the provider its `model:provider` name pins.
type Fallback = (Arc<ModelRoute>, Option<String>);

/// Where the reply goes: not sent yet, or an event stream already open to the client.
enum Sink {
    Pending(Deliver),
    Open(EndOnDrop),
    Spent,
}

impl Sink {
    fn open(&mut self, headers: impl FnOnce() -> Headers) -> Arc<StreamBuffer> {
        match std::mem::replace(self, Sink::Spent) {
            Sink::Pending(deliver) => {
                let buffer = Arc::new(StreamBuffer::default());
                deliver(Reply::Stream {
                    headers: headers(),
                    buffer: buffer.clone(),
                });
                *self = Sink::Open(EndOnDrop(buffer.clone()));
                buffer
            }
            Sink::Open(guard) => {
                let buffer = guard.0.clone();
                *self = Sink::Open(guard);
                buffer
            }
            Sink::Spent => unreachable!("a reply is delivered once"),
        }
    }

    fn buffer(&self) -> Option<Arc<StreamBuffer>> {
        match self {
            Sink::Open(guard) => Some(guard.0.clone()),
            _ => None,
        }
    }

    /// End the request with an error, as a response (saying how many channels were tried)
    /// or as a final stream event, in the client's protocol.
    fn fail(&mut self, error: &GatewayError, ctx: &Context<'_>, progress: &Progress) {
        match std::mem::replace(self, Sink::Spent) {
            Sink::Pending(deliver) => {
                let mut response = error_response(error, &ctx.request_id, ctx.req.surface);
                response
                    .headers
                    .push((ATTEMPTS_HEADER.to_owned(), progress.attempts.to_string()));
                response.headers.push((
                    OVERHEAD_HEADER.to_owned(),
                    overhead_us(ctx, progress).to_string(),
                ));
                deliver(Reply::Complete(response));
            }
            Sink::Open(guard) => guard.0.push(&ctx.error_event(error)),
            Sink::Spent => {}
        }
    }
}

/// An open stream's buffer, ended for the reader however the request ends (a panic included).
struct EndOnDrop(Arc<StreamBuffer>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// What a successful attempt brought back.
enum Answer {
    Json { body: Vec<u8>, observed: Observed },
    Stream(Streamed),
}

/// A stream whose first valid event has arrived, handed from the attempt that opened it to
/// the pump that relays the rest.
struct Streamed {
    body: Body,
    relay: Box<StreamRelay>,
    /// What the client gets first.
    out: Vec<u8>,
    /// The provider's body has ended already.
    ended: bool,
}

struct Success {
    /// The model that answered: the requested one or a fallback.
    model: Arc<ModelRoute>,
    index: usize,
    answer: Answer,
    /// Still open for a stream, whose outcome is known only at its end.
    attempt: Attempt,
}

/// One attempt on one channel, counted in flight from its start until its outcome is settled
/// (for a stream, at the stream's end). Dropped unsettled (the client went away), it ends as
/// cancelled, so the channel's in-flight count never drifts.
struct Attempt {
    model: Arc<ModelRoute>,
    index: usize,
    settled: bool,
}

impl Attempt {
    fn begin(model: &Arc<ModelRoute>, index: usize) -> Self {
        model.selector.begin(index);
        Attempt {
            model: model.clone(),
            index,
            settled: false,
        }
    }

    /// Ends the attempt with its outcome; later calls (and the drop) do nothing.
    fn settle(&mut self, outcome: Outcome, now: Instant) {
        if !std::mem::replace(&mut self.settled, true) {
            self.model.selector.end(self.index, outcome, None, now);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.settle(Outcome::Cancelled, Instant::now());
    }
}

struct Failure {
    error: GatewayError,
    /// The channel whose answer decided the failure (a non-failover 4xx), if any.
    channel: Option<(Arc<ModelRoute>, usize)>,
    cancelled: bool,
    /// Every channel failed in a way another model may not (the fallback's trigger).
    exhausted: bool,
}

impl Failure {
    fn of(error: GatewayError) -> Self {
        Failure {
            error,
            channel: None,
            cancelled: false,
            exhausted: false,
        }
    }
}

/// Counters shared by the attempt loop and the code that meters the request.
#[derive(Default)]
struct Progress {
    attempts: u32,
    /// Time spent waiting on providers, so the rest is our own overhead.
    upstream: Duration,
    /// Parameters the last attempt's translation left out.
    dropped: Vec<String>,
    /// Channels that failed and were failed over, in order (for their live error rate).
    failovers: Vec<String>,
}

impl Engine {
    /// Emit the usage event, and settle the request's token buckets with what it used.
    fn emit_metered(self: &Arc<Self>, ctx: &Context<'_>, event: &UsageEvent<'_>) {
        self.emit_usage(event);
        if ctx.taken.iter().any(|t| t.tokens) {
            let used = event.prompt_tokens + event.completion_tokens;
            let (engine, taken) = (self.clone(), ctx.taken.clone());
            tokio::spawn(async move {
                admission::settle(engine.limiter().await, &taken, used).await;
            });
        }
    }

    /// Take from the request's rate-limit buckets: the prompt's estimate and the answer's
    /// allowance from token buckets. A refusal comes back as the `429` to send.
    async fn admit(&self, routing: &Routing, ctx: &mut Context<'_>) -> Result<(), Response> {
        let tokens = ctx.local_prompt
            + ctx
                .req
                .max_tokens()
                .unwrap_or(admission::DEFAULT_ANSWER_TOKENS);
        let asker = Asker {
            key: &ctx.key_id,
            account: &ctx.account_id,
            model: &ctx.model.slug,
        };
        match admission::admit(self.limiter().await, &routing.limits, &asker, tokens).await {
            Ok(admitted) => {
                ctx.taken = admitted.taken;
                ctx.rate_headers = admitted.headers;
                Ok(())
            }
            Err((error, headers)) => {
                let mut response = error_response(&error, &ctx.request_id, ctx.req.surface);
                response.headers.extend(headers);
                Err(response)
            }
        }
    }

    pub(super) async fn run_chat(
        self: Arc<Self>,
        call: Call,
        secret: Option<String>,
        body: Vec<u8>,
        received: Instant,
        deliver: Deliver,
    ) {
        let request_id = new_request_id();
        let routing = self.routing.load_full();
        let (mut ctx, prompt) = match prepare(
            &routing,
            &call,
            secret.as_deref(),
            &body,
            request_id,
            received,
        ) {
            Ok(ctx) => ctx,
            Err((error, request_id)) => {
                return deliver(Reply::Complete(error_response(
                    &error,
                    &request_id,
                    call.surface,
                )));
            }
        };
        if let Err(refused) = self.admit(&routing, &mut ctx).await {
            return deliver(Reply::Complete(refused));
        }
        let mut sink = Sink::Pending(deliver);
        let mut progress = Progress::default();
        let result = self
            .attempt_with_keepalive(&ctx, &mut sink, &mut progress)
            .await;
        match result {
            Err(failure) => {
                // The usage goes out before the answer does (see `emit_usage`).
                let model = ctx.model.clone();
                let index = failure.channel.map(|(model, index)| {
                    ctx.model = model;
                    index
                });
                let channel = index.map(|i| &ctx.model.channels[i]);
                let counts = (prompt.get().await, 0);
                let mut event = meter(&ctx, counts, channel, None, &progress);
                event.status = if failure.cancelled {
                    "cancelled"
                } else {
                    "failed"
                };
                event.cancelled = failure.cancelled;
                event.http_status = failure.error.status();
                event.error_type = Some(failure.error.type_name());
                event.error_message = Some(failure.error.message.clone());
                self.emit_metered(&ctx, &event);
                if !failure.cancelled {
                    ctx.model = model;
                    sink.fail(&failure.error, &ctx, &progress);
                }
            }
            Ok(Success {
                model,
                index,
                answer: Answer::Json { body, observed },
                ..
            }) => {
                ctx.model = model;
                let channel = &ctx.model.channels[index];
                let (counts, prompt) = billed_counts(&ctx, prompt, &observed).await;
                let mut event = meter(&ctx, counts, Some(channel), Some(&observed), &progress);
                let facts = ctx.facts(Some(&observed));
                let Assessment { verdicts, judge } = insurance::assess(&facts, &event);
                let mut headers = headers(&ctx, Some(channel), &progress, false);
                if !verdicts.is_empty() {
                    headers.push((INSURANCE_HEADER.to_owned(), insurance::describe(&verdicts)));
                }
                let overhead = overhead_us(&ctx, &progress);
                local_counts(&ctx, prompt, &observed, &mut event).await;
                event.gateway_overhead_us = overhead;
                event.case = insurance::case(&facts, !verdicts.is_empty(), &judge);
                event.insurance = verdicts;
                self.emit_metered(&ctx, &event);
                if let Sink::Pending(deliver) = std::mem::replace(&mut sink, Sink::Spent) {
                    deliver(Reply::Complete(Response {
                        status: 200,
                        headers,
                        body,
                    }));
                }
            }
            Ok(Success {
                model,
                index,
                answer: Answer::Stream(streamed),
                attempt,
            }) => {
                ctx.model = model;
                self.pump(&ctx, prompt, index, streamed, attempt, sink, progress)
                    .await;
            }
        }
    }

    /// Try the plan; for streams, keep the client's connection alive while we wait and stop at
    /// once if the client leaves.
    async fn attempt_with_keepalive(
        &self,
        ctx: &Context<'_>,
        sink: &mut Sink,
        progress: &mut Progress,
    ) -> Result<Success, Failure> {
        if !ctx.req.stream {
            return attempt_all(ctx, progress).await;
        }
        let start = tokio::time::Instant::from_std(ctx.received) + ctx.keepalive;
        let mut ticker = tokio::time::interval_at(start, ctx.keepalive);
        // The attempts borrow `progress`; a local copy is merged back when they finish.
        let mut local = Progress::default();
        let outcome = {
            let attempts = attempt_all(ctx, &mut local);
            tokio::pin!(attempts);
            loop {
                let open = sink.buffer();
                tokio::select! {
                    result = &mut attempts => break result,
                    _ = ticker.tick() => {
                        sink.open(|| headers(ctx, None, progress, true)).push(ctx.req.surface.keepalive());
                    }
                    () = cancelled(open) => {
                        break Err(Failure {
                            cancelled: true,
                            ..Failure::of(GatewayError::new(ErrorKind::Internal, "client disconnected"))
                        });
                    }
                }
            }
        };
        progress.attempts += local.attempts;
        progress.upstream += local.upstream;
        progress.dropped = local.dropped;
        progress.failovers = local.failovers;
        outcome
    }

    /// Relay an upstream stream to the client until it completes, fails or the client leaves.
    /// However it ends, that is the attempt's outcome for its channel's health.
    #[allow(clippy::too_many_arguments)] // the request, its prompt count, then the answer's parts
    async fn pump(
        self: &Arc<Self>,
        ctx: &Context<'_>,
        prompt: Count,
        index: usize,
        streamed: Streamed,
        mut attempt: Attempt,
        mut sink: Sink,
        progress: Progress,
    ) {
        let Streamed {
            mut body,
            mut relay,
            mut out,
            mut ended,
        } = streamed;
        let channel = &ctx.model.channels[index];
        let mut failure = None;
        let mut timed_out = false;
        let overhead = overhead_us(ctx, &progress);
        let buffer = sink.open(|| headers(ctx, Some(channel), &progress, true));
        buffer.push(&out);
        let idle = Duration::from_millis(channel.timeouts.idle_ms);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + ctx.keepalive, ctx.keepalive);
        let mut cancelled_by_client = false;
        while failure.is_none() && !ended && !relay.completed() {
            out.clear();
            tokio::select! {
                biased;
                () = buffer.cancelled() => {
                    cancelled_by_client = true;
                    break;
                }
                chunk = tokio::time::timeout(idle, body.chunk()) => match chunk {
                    Err(_) => {
                        timed_out = true;
                        failure = Some(format!("the provider sent nothing for {} s", idle.as_secs()));
                    }
                    Ok(None) => ended = true,
                    Ok(Some(Err(e))) => {
                        failure = Some(format!("the provider's stream broke off before it completed ({e})"));
                    }
                    Ok(Some(Ok(data))) => {
                        if let Err(e) = relay.feed(&data, Instant::now(), &mut out) {
                            failure = Some(format!("the provider sent an invalid event stream ({e})"));
                        }
                        buffer.push(&out);
                        ticker.reset();
                    }
                },
                _ = ticker.tick() => buffer.push(ctx.req.surface.keepalive()),
            }
        }
        out.clear();
        let observed = relay.finish(Instant::now(), &mut out).clone();
        buffer.push(&out);
        let completed = observed.completed && failure.is_none() && !cancelled_by_client;
        let outcome = stream_outcome(cancelled_by_client, completed, timed_out);
        attempt.settle(outcome, Instant::now());
        let (counts, prompt) = billed_counts(ctx, prompt, &observed).await;
        let mut event = meter(ctx, counts, Some(channel), Some(&observed), &progress);
        event.gateway_overhead_us = overhead;
        let error = (!completed && !cancelled_by_client).then(|| {
            let reason = failure.unwrap_or_else(|| {
                observed.upstream_error.clone().map_or_else(
                    || "the provider closed the stream before it completed".to_owned(),
                    |e| format!("the provider reported an error mid-stream: {e}"),
                )
            });
            GatewayError::new(ErrorKind::ProviderError, reason)
        });
        if cancelled_by_client {
            event.status = "cancelled";
            event.cancelled = true;
        } else if let Some(error) = &error {
            event.status = "failed";
            event.http_status = error.status();
            event.error_type = Some(error.type_name());
            event.error_message = Some(error.message.clone());
        }
        let facts = ctx.facts(Some(&observed));
        let Assessment { verdicts, judge } = insurance::assess(&facts, &event);
        if !cancelled_by_client {
            out.clear();
            relay.tail(ctx.req.surface, &verdicts, &mut out);
            buffer.push(&out);
        }
        if let Some(error) = &error {
            if observed.upstream_error.is_none() {
                out.clear();
                relay.fail(error, &mut out, || ctx.error_event(error));
                buffer.push(&out);
            }
        }
        local_counts(ctx, prompt, &observed, &mut event).await;
        event.case = insurance::case(&facts, !verdicts.is_empty(), &judge);
        event.insurance = verdicts;
        self.emit_metered(ctx, &event);
        buffer.end();
        if completed {
            // Read to the end so the connection returns to the pool; the client is done already.
            let _ = tokio::time::timeout(DRAIN_AFTER_DONE, async {
                while let Some(Ok(_)) = body.chunk().await {}
            })
            .await;
        }
    }
}

/// What the way a relayed stream ended says about its channel.
fn stream_outcome(cancelled_by_client: bool, completed: bool, timed_out: bool) -> Outcome {
    if cancelled_by_client {
        Outcome::Cancelled
    } else if completed {
        Outcome::Success
    } else if timed_out {
        Outcome::Timeout
    } else {
        Outcome::ServerError(502)
    }
}

/// How a provider's stream reaches the client (naming `slug`, the model that answers): Chat
/// Completions chunks rewritten in place, other protocols' events passed through, anything
/// else translated.
fn stream_relay(ctx: &Context<'_>, slug: &str, channel: &ChannelRoute) -> StreamRelay {
    let protocol = channel.provider.protocol;
    if ctx.req.relayed_to(protocol) && protocol == Protocol::OpenAi {
        StreamRelay::Chat(relay::StreamRelay::new(
            &ctx.request_id,
            slug,
            ctx.req.include_usage,
        ))
    } else if ctx.req.relayed_to(protocol) {
        StreamRelay::Events(crate::translate::stream::Relay::passthrough(
            protocol.stream_decoder(),
            &ctx.request_id,
            slug,
        ))
    } else {
        StreamRelay::Events(crate::translate::stream::Relay::new(
            channel.provider.protocol.stream_decoder(),
            ctx.req.surface.stream_encoder(
                &ctx.request_id,
                slug,
                ctx.created_ms / 1000,
                ctx.req.include_usage,
                ctx.local_prompt,
            ),
        ))
    }
}

fn prepare<'a>(
    routing: &Routing,
    call: &'a Call,
    secret: Option<&str>,
    body: &'a [u8],
    request_id: String,
    received: Instant,
) -> Result<(Context<'a>, Count), (GatewayError, String)> {
    let key = match admission::authenticate(routing, secret, unix_ms()) {
        Ok(k) => k,
        Err(e) => return Err((e, request_id)),
    };
    let req = match Inbound::parse(call, body) {
        Ok(r) => r,
        Err(e) => return Err((e, request_id)),
    };
    let (model, pinned, choice) =
        if req.model == auto::AUTO_MODEL && routing.model(auto::AUTO_MODEL).is_none() {
            let config = req.steering.model_routing.clone().unwrap_or_default();
            let order = &req.steering.order;
            let usable = |m: &ModelRoute| steering::check(m, order, None).is_ok();
            match auto::choose(routing, key, &config, &demand(&req, body), usable) {
                Ok(choice) => (choice.models[0].clone(), None, Some(choice)),
                Err(e) => return Err((e, request_id)),
            }
        } else {
            let Some((model, pinned)) = routing.model_and_pin(&req.model) else {
                let message = format!("Model {} is not valid", req.model);
                return Err((
                    GatewayError::new(ErrorKind::InvalidModel, message),
                    request_id,
                ));
            };
            (model.clone(), pinned, None)
        };
    let model = &model;
    let mut fallbacks = match fallbacks(routing, key, model, &req) {
        Ok(f) => f,
        Err(e) => return Err((e, request_id)),
    };
    // Model routing's other candidates come first, then the request's own fallbacks.
    let model_routing = choice.map(|choice| {
        fallbacks.retain(|(m, _)| !choice.models.iter().any(|c| c.slug == m.slug));
        let rest = choice.models[1..].iter().map(|m| (m.clone(), None));
        fallbacks.splice(0..0, rest);
        choice.explanation
    });
    if let Err(e) = steering::check(model, &req.steering.order, pinned) {
        return Err((e, request_id));
    }
    if !key.allows(&model.slug) {
        let message = format!(
            "You have no permission to access this resource: this API key may not use model {}",
            model.slug
        );
        return Err((
            GatewayError::new(ErrorKind::AccessDenied, message),
            request_id,
        ));
    }
    let encoding = model.encoding;
    let prompt = if body.len() <= counts::INLINE_BYTES {
        Count::Ready(req.local_prompt_tokens(encoding))
    } else {
        let (call, body) = (call.clone(), body.to_vec());
        Count::of(body.len(), move || {
            Inbound::parse(&call, &body).map_or(0, |r| r.local_prompt_tokens(encoding))
        })
    };
    let local_prompt = match &prompt {
        Count::Ready(n) => *n,
        Count::Pending(_) => (body.len() / 4) as u64,
    };
    let order = req.steering.order.clone();
    let pinned = pinned.map(str::to_owned);
    let ctx = Context {
        request_id,
        received,
        created_ms: unix_ms(),
        key_id: key.id.clone(),
        account_id: key.account.clone(),
        model: model.clone(),
        req,
        local_prompt,
        keepalive: Duration::from_millis(routing.settings.keepalive_ms.max(1)),
        insurance: routing.insurance.clone(),
        retain_content: key.retain_content,
        order,
        pinned,
        fallbacks,
        model_routing,
        taken: Vec::new(),
        rate_headers: Vec::new(),
    };
    Ok((ctx, prompt))
}

/// What a `zenmux/auto` request needs of a model: sizes (see `auto::prompt_estimate`) and what
/// it asks for.
fn demand(req: &Inbound<'_>, body: &[u8]) -> auto::Demand {
    let neutral = req.neutral().ok();
    auto::Demand {
        prompt_tokens: neutral.map_or((body.len() / 4) as u64, auto::prompt_estimate),
        answer_tokens: req.max_tokens().unwrap_or(admission::DEFAULT_ANSWER_TOKENS),
        tools: neutral.is_some_and(|r| !r.tools.is_empty()),
        structured_output: neutral.is_some_and(|r| {
            matches!(
                r.output,
                Some(crate::translate::OutputFormat::JsonSchema { .. })
            )
        }),
        reasoning: neutral.is_some_and(|r| r.reasoning.is_some()),
        turns: neutral.map_or(1, |r| r.messages.len()),
    }
}

/// The models to fall back to, in order: the request's own (`provider.fallback`,
/// `zenmux-route.fallback`), else the account's default, unless the request refused any. A
/// fallback the request names must exist and be open to the key; the account's default is
/// skipped when it is not (the request did not ask for it). The requested model is left out.
fn fallbacks(
    routing: &Routing,
    key: &super::routing::KeyEntry,
    model: &ModelRoute,
    req: &Inbound<'_>,
) -> Result<Vec<Fallback>, GatewayError> {
    let steering = &req.steering;
    if steering.fallbacks.is_empty() && !steering.no_fallback {
        let usable = key.default_fallback.as_deref().and_then(|name| {
            let (fallback, pin) = routing.model_and_pin(name)?;
            let open = key.allows(&fallback.slug)
                && steering::check(fallback, &Order::Balanced, pin).is_ok()
                && !(fallback.slug == model.slug && pin.is_none());
            open.then(|| (fallback.clone(), pin.map(str::to_owned)))
        });
        return Ok(usable.into_iter().collect());
    }
    let names: &[String] = if steering.no_fallback {
        &[]
    } else {
        &steering.fallbacks
    };
    let mut models: Vec<Fallback> = Vec::with_capacity(names.len());
    for name in names {
        let Some((fallback, pin)) = routing.model_and_pin(name) else {
            return Err(GatewayError::new(
                ErrorKind::InvalidModel,
                format!("Fallback model {name} is not valid"),
            ));
        };
        if !key.allows(&fallback.slug) {
            return Err(GatewayError::new(
                ErrorKind::AccessDenied,
                format!(
                    "You have no permission to access this resource: this API key may not use \
                     fallback model {}",
                    fallback.slug
                ),
            ));
        }
        steering::check(fallback, &Order::Balanced, pin)?;
        let pin = pin.map(str::to_owned);
        let repeated = models
            .iter()
            .any(|(m, p)| m.slug == fallback.slug && *p == pin);
        let itself = fallback.slug == model.slug && pin.is_none();
        if !repeated && !itself {
            models.push((fallback.clone(), pin));
        }
    }
    Ok(models)
}

async fn cancelled(buffer: Option<Arc<StreamBuffer>>) {
    match buffer {
        Some(b) => b.cancelled().await,
        None => std::future::pending().await,
    }
}

/// The requested model, then each fallback model while every channel of the one before
/// failed. A listed order concerns the requested model only; a fallback is routed by the
/// request's priority factor, or as its model routes by default, within its own pin.
async fn attempt_all(ctx: &Context<'_>, progress: &mut Progress) -> Result<Success, Failure> {
    let mut last = None;
    let requested = std::iter::once((&ctx.model, &ctx.pinned));
    let fallbacks = ctx.fallbacks.iter().map(|(model, pin)| (model, pin));
    for (n, (model, pinned)) in requested.chain(fallbacks).enumerate() {
        let order = match (&ctx.order, n) {
            (Order::Listed(_), 1..) => &Order::Balanced,
            (order, _) => order,
        };
        let pinned = pinned.as_deref();
        match attempt_model(ctx, model, order, pinned, progress).await {
            Err(failure) if failure.exhausted => last = Some(failure),
            result => return result,
        }
    }
    Err(last.expect("the requested model is always tried"))
}

/// Walk one model's attempt plan. Connect errors, timeouts, 5xx, 429, the channel's own
/// 401/403/404 and a stream that breaks before its first valid event move on to the next
/// channel; errors that are the request's fault end the walk.
async fn attempt_model(
    ctx: &Context<'_>,
    model: &Arc<ModelRoute>,
    order: &Order,
    pinned: Option<&str>,
    progress: &mut Progress,
) -> Result<Success, Failure> {
    let mut plan = Vec::with_capacity(model.channels.len());
    steering::plan(model, order, pinned, Instant::now(), &mut plan).map_err(Failure::of)?;
    let mut failures: Vec<(usize, AttemptError)> = Vec::new();
    for &index in plan.iter().take(model.max_attempts) {
        let channel = &model.channels[index];
        // Rendered per attempt (each channel has its own upstream model name) and written to
        // the connection from here, never copied.
        let mut body = Vec::with_capacity(ctx.req.len_hint());
        match ctx.req.upstream_body(
            channel.provider.protocol,
            &channel.upstream_model,
            &mut body,
        ) {
            Ok(dropped) => progress.dropped = dropped,
            Err(error) => return Err(Failure::of(error)),
        }
        progress.attempts += 1;
        let mut attempt = Attempt::begin(model, index);
        let started = Instant::now();
        let result = attempt_one(ctx, model, channel, &body).await;
        let now = Instant::now();
        progress.upstream += now - started;
        match result {
            Ok(answer) => {
                model.selector.observe_ttft(index, now - started, now);
                // A stream's outcome is its end: the pump settles it.
                if let Answer::Json { .. } = answer {
                    attempt.settle(Outcome::Success, now);
                }
                return Ok(Success {
                    model: model.clone(),
                    index,
                    answer,
                    attempt,
                });
            }
            Err(e) => {
                attempt.settle(e.outcome(), now);
                if !e.fails_over() {
                    return Err(Failure {
                        channel: Some((model.clone(), index)),
                        ..Failure::of(request_error(&e))
                    });
                }
                progress.failovers.push(channel.id.clone());
                failures.push((index, e));
            }
        }
    }
    Err(Failure {
        exhausted: true,
        ..Failure::of(all_failed(model, &failures))
    })
}

async fn attempt_one(
    ctx: &Context<'_>,
    model: &ModelRoute,
    channel: &ChannelRoute,
    body: &[u8],
) -> Result<Answer, AttemptError> {
    let started = Instant::now();
    let first_byte = Duration::from_millis(channel.timeouts.first_byte_ms);
    let request = upstream::Request {
        model: &channel.upstream_model,
        stream: ctx.req.stream,
        anthropic_beta: ctx.req.anthropic_beta,
        body,
    };
    let response = upstream::send(&channel.provider, &request, first_byte).await?;
    let body = response.into_body();
    if ctx.req.stream {
        let first_byte = first_byte.saturating_sub(started.elapsed());
        let idle = Duration::from_millis(channel.timeouts.idle_ms);
        return first_event(ctx, &model.slug, channel, body, first_byte, idle).await;
    }
    let total = Duration::from_millis(channel.timeouts.total_ms).saturating_sub(started.elapsed());
    let raw = match tokio::time::timeout(total, body.collect(MAX_RESPONSE_BYTES)).await {
        Err(_) => return Err(AttemptError::Timeout),
        Ok(Err(client::Error::BodyTooLarge { limit })) => {
            return Err(AttemptError::Status {
                status: 502,
                retry_after: None,
                message: format!("the provider's response is larger than {limit} bytes"),
            });
        }
        Ok(Err(e)) => {
            return Err(AttemptError::Connect(format!(
                "the provider connection failed: {e}"
            )));
        }
        Ok(Ok(raw)) => raw,
    };
    if channel.provider.protocol != Protocol::OpenAi || ctx.req.surface != Surface::Chat {
        return match answer_json(
            channel.provider.protocol,
            ctx.req.surface,
            &raw,
            &ctx.request_id,
            &model.slug,
            ctx.created_ms / 1000,
            Instant::now(),
        ) {
            Ok((body, observed)) => Ok(Answer::Json { body, observed }),
            Err(message) => Err(AttemptError::Status {
                status: 502,
                retry_after: None,
                message: channel.provider.scrub(&message),
            }),
        };
    }
    let mut out = Vec::with_capacity(raw.len() + 64);
    match relay_json(&raw, &ctx.request_id, &model.slug, Instant::now(), &mut out) {
        Ok(observed) if observed.upstream_error.is_none() => Ok(Answer::Json {
            body: out,
            observed,
        }),
        Ok(observed) => Err(AttemptError::Status {
            status: 502,
            retry_after: None,
            message: channel
                .provider
                .scrub(observed.upstream_error.as_deref().unwrap_or_default()),
        }),
        Err(_) => Err(AttemptError::Status {
            status: 502,
            retry_after: None,
            message: "the provider returned a response that is not valid JSON".to_owned(),
        }),
    }
}

/// Read a stream until its first valid event. Nothing has reached the client yet, so a
/// provider that answers 200 and then stays silent, closes, reports an error, or sends
/// something that is not its protocol's events is a failure to route around. The first read
/// waits what is left of the first-byte timeout, later ones the idle timeout each.
async fn first_event(
    ctx: &Context<'_>,
    slug: &str,
    channel: &ChannelRoute,
    mut body: Body,
    first_byte: Duration,
    idle: Duration,
) -> Result<Answer, AttemptError> {
    let broken = |message: String| AttemptError::Status {
        status: 502,
        retry_after: None,
        message,
    };
    let mut relay = Box::new(stream_relay(ctx, slug, channel));
    let mut out = Vec::with_capacity(4096);
    let mut wait = first_byte;
    loop {
        let data = match tokio::time::timeout(wait, body.chunk()).await {
            Err(_) => return Err(AttemptError::Timeout),
            Ok(Some(Err(e))) => {
                return Err(AttemptError::Connect(format!(
                    "the provider connection failed: {e}"
                )));
            }
            Ok(Some(Ok(data))) => data,
            Ok(None) => {
                // The end is the pump's to finish: it writes what the end completes.
                let seen = relay.observed();
                if seen.events > 0 || seen.completed {
                    return Ok(Answer::Stream(Streamed {
                        body,
                        relay,
                        out,
                        ended: true,
                    }));
                }
                return Err(AttemptError::Connect(
                    "the provider closed the stream before its first event".to_owned(),
                ));
            }
        };
        wait = idle;
        relay
            .feed(&data, Instant::now(), &mut out)
            .map_err(|e| broken(format!("the provider sent an invalid event stream ({e})")))?;
        let seen = relay.observed();
        if seen.malformed_first {
            return Err(broken(
                "the provider's stream began with a malformed event".to_owned(),
            ));
        }
        if seen.events == 0
            && let Some(error) = &seen.upstream_error
        {
            return Err(broken(channel.provider.scrub(error)));
        }
        if seen.events > 0 || seen.completed {
            return Ok(Answer::Stream(Streamed {
                body,
                relay,
                out,
                ended: false,
            }));
        }
    }
}

/// A provider error that is the request's own fault, in our format.
fn request_error(e: &AttemptError) -> GatewayError {
    let (status, message) = match e {
        AttemptError::Status {
            status, message, ..
        } => (*status, message.as_str()),
        _ => (400, ""),
    };
    let kind = match status {
        413 => ErrorKind::BodyTooLarge,
        422 => ErrorKind::ProviderUnprocessable,
        _ => ErrorKind::InvalidParams,
    };
    let message = if message.is_empty() {
        format!("The provider rejected the request (HTTP {status})")
    } else {
        format!("The provider rejected the request: {message}")
    };
    GatewayError::new(kind, message)
}

fn all_failed(model: &ModelRoute, failures: &[(usize, AttemptError)]) -> GatewayError {
    if failures.is_empty() {
        let mut message = format!("No provider is available for model {}", model.slug);
        if !model.disabled.is_empty() {
            message.push_str(": channels are disabled because ");
            message.push_str(&model.disabled.join("; "));
        }
        return GatewayError::new(ErrorKind::NoProviderAvailable, message);
    }
    let detail = failures
        .iter()
        .map(|(i, e)| format!("{}: {}", model.channels[*i].id, e.describe()))
        .collect::<Vec<_>>()
        .join("; ");
    if failures
        .iter()
        .all(|(_, e)| matches!(e, AttemptError::Status { status: 429, .. }))
    {
        let retry_after = failures
            .iter()
            .filter_map(|(_, e)| match e {
                AttemptError::Status { retry_after, .. } => *retry_after,
                _ => None,
            })
            .min();
        return GatewayError::new(
            ErrorKind::RateLimited { retry_after },
            format!(
                "Rate limit exceeded: every provider of {} is rate limited ({detail})",
                model.slug
            ),
        );
    }
    if failures
        .iter()
        .all(|(_, e)| matches!(e, AttemptError::Timeout))
    {
        return GatewayError::new(
            ErrorKind::ProviderTimeout,
            format!("Every provider of {} timed out ({detail})", model.slug),
        );
    }
    GatewayError::new(
        ErrorKind::NoProviderAvailable,
        format!("All providers failed for model {} ({detail})", model.slug),
    )
}

/// The local counts the cost needs before the answer's verdict: only when the provider's usage
/// is missing, since they are billed then. The prompt's count comes back if it is still owed.
async fn billed_counts(
    ctx: &Context<'_>,
    prompt: Count,
    observed: &Observed,
) -> ((u64, u64), Option<Count>) {
    if observed.usage.is_some() {
        return ((0, 0), Some(prompt));
    }
    let output = counts::output(ctx.model.encoding, observed).await;
    ((prompt.get().await, output), None)
}

/// The local counts, kept beside the provider's as a cross-check (taken before the answer's
/// end is released: the usage event leaves first).
async fn local_counts(
    ctx: &Context<'_>,
    prompt: Option<Count>,
    observed: &Observed,
    event: &mut UsageEvent<'_>,
) {
    if let Some(prompt) = prompt {
        event.local_prompt_tokens = prompt.get().await;
        event.local_completion_tokens = counts::output(ctx.model.encoding, observed).await;
    }
}

impl Context<'_> {
    /// What the insurance rules look at besides the usage event.
    fn facts<'f>(&'f self, observed: Option<&'f Observed>) -> Facts<'f> {
        Facts {
            rules: &self.insurance,
            req: &self.req,
            observed,
            model_ttft_p50_ms: self.model.ttft_p50_ms,
            retain_content: self.retain_content,
        }
    }

    /// Our error as the last event of the client's stream.
    fn error_event(&self, error: &GatewayError) -> Vec<u8> {
        self.req.surface.error_event(
            error,
            &self.request_id,
            &self.model.slug,
            self.created_ms / 1000,
        )
    }
}

fn overhead_us(ctx: &Context<'_>, progress: &Progress) -> u64 {
    ctx.received
        .elapsed()
        .saturating_sub(progress.upstream)
        .as_micros() as u64
}

fn headers(
    ctx: &Context<'_>,
    channel: Option<&ChannelRoute>,
    progress: &Progress,
    stream: bool,
) -> Headers {
    let mut h = Vec::with_capacity(7);
    let content_type = if stream {
        ctx.req.surface.stream_content_type()
    } else {
        "application/json"
    };
    h.push(("content-type".to_owned(), content_type.to_owned()));
    if stream {
        h.push(("cache-control".to_owned(), "no-cache".to_owned()));
        h.push(("x-accel-buffering".to_owned(), "no".to_owned()));
    }
    h.push((REQUEST_ID_HEADER.to_owned(), ctx.request_id.clone()));
    if let Some(c) = channel {
        h.push((CHANNEL_HEADER.to_owned(), c.id.clone()));
    }
    h.push((
        OVERHEAD_HEADER.to_owned(),
        overhead_us(ctx, progress).to_string(),
    ));
    h.push((ATTEMPTS_HEADER.to_owned(), progress.attempts.to_string()));
    h.extend(ctx.rate_headers.iter().cloned());
    if let Some(why) = &ctx.model_routing {
        h.push((auto::MODEL_ROUTING_HEADER.to_owned(), why.clone()));
    }
    if !progress.dropped.is_empty() {
        h.push((DROPPED_HEADER.to_owned(), progress.dropped.join(", ")));
    }
    h
}

/// The usage event for what happened so far. Provider-reported usage is billed when present;
/// otherwise the local counts (prompt, output) are (a stream cut before its usage chunk).
fn meter<'e>(
    ctx: &'e Context<'_>,
    (local_prompt, local_completion): (u64, u64),
    channel: Option<&'e ChannelRoute>,
    observed: Option<&'e Observed>,
    progress: &Progress,
) -> UsageEvent<'e> {
    let delivered_output = observed.is_some_and(|o| o.token_chunks > 0 || o.completed);
    let (prompt, completion, cached, reasoning, source) = match observed.and_then(|o| o.usage) {
        Some(u) => (u.prompt, u.completion, u.cached, u.reasoning, "provider"),
        // Nothing reached the provider's model (failed before any answer): nothing to bill.
        None if !delivered_output => (0, 0, 0, 0, "none"),
        None => (local_prompt, local_completion, 0, 0, "local"),
    };
    let cost = channel.map_or(0, |c| c.price.cost(prompt, cached, completion));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ttft = observed
        .and_then(|o| o.first_token_at)
        .map(|t| ms(t - ctx.received));
    let tps = observed.and_then(|o| match (o.first_token_at, o.last_token_at) {
        (Some(first), Some(last)) if last > first && completion > 0 => {
            Some(completion as f64 / (last - first).as_secs_f64())
        }
        _ => None,
    });
    UsageEvent {
        request_id: &ctx.request_id,
        created_ms: ctx.created_ms,
        account_id: &ctx.account_id,
        key_id: &ctx.key_id,
        model: &ctx.model.slug,
        api: ctx.req.surface.api(),
        channel_id: channel.map(|c| c.id.as_str()),
        provider_id: channel.map(|c| c.provider.id.as_str()),
        upstream_model: channel.map(|c| c.upstream_model.as_str()),
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
        local_prompt_tokens: local_prompt,
        local_completion_tokens: local_completion,
        usage_source: source,
        cost_nano_usd: cost,
        price_prompt: channel.map_or(0, |c| c.price.prompt),
        price_completion: channel.map_or(0, |c| c.price.completion),
        price_cached: channel.map_or(0, |c| c.price.cached),
        ttft_ms: ttft,
        total_ms: ms(ctx.received.elapsed()),
        output_tokens_per_second: tps,
        max_chunk_gap_ms: observed
            .filter(|o| o.token_chunks > 1)
            .map(|o| ms(o.max_gap)),
        gateway_overhead_us: overhead_us(ctx, progress),
        finish_reason: observed.and_then(|o| o.finish_reason.as_deref()),
        status: "ok",
        http_status: 200,
        error_type: None,
        error_message: None,
        stream: ctx.req.stream,
        cancelled: false,
        attempts: progress.attempts,
        malformed_chunks: observed.map_or(0, |o| o.malformed_events),
        insurance: Vec::new(),
        case: None,
        failovers: progress.failovers.clone(),
    }
}
