/* The MQTT session (session.h). */
#include "mqim/session.h"

#include <string.h>

#define SEND_TIMEOUT_MS 1000u
#define SEND_ZERO_LIMIT 5u      /* consecutive sends that moved nothing: the link is stuck */
#define CONNACK_TIMEOUT_MS MQIM_CFG_PINGRESP_TIMEOUT_MS

/* The transition table: next state for (state, event); STATE_COUNT = impossible. */
static const uint8_t transitions[MQIM_SESSION_STATE_COUNT][MQIM_SESSION_EVENT_COUNT] = {
    /*                START                  RETRY_DUE                  OPEN_FAILED            CONNACK_OK               CONNACK_REFUSED        LINK_LOST              STOP */
    [MQIM_SESSION_STOPPED] = { MQIM_SESSION_BACKOFF, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STOPPED },
    [MQIM_SESSION_BACKOFF] = { MQIM_SESSION_STATE_COUNT, MQIM_SESSION_CONNECTING, MQIM_SESSION_BACKOFF, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STOPPED },
    [MQIM_SESSION_CONNECTING] = { MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_CONNECTED, MQIM_SESSION_BACKOFF, MQIM_SESSION_BACKOFF, MQIM_SESSION_STOPPED },
    [MQIM_SESSION_CONNECTED] = { MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_STATE_COUNT, MQIM_SESSION_BACKOFF, MQIM_SESSION_STOPPED },
};

mqim_status_t mqim_session_next_state(mqim_session_state_t state, mqim_session_event_t event,
                                      mqim_session_state_t *next)
{
    uint8_t n;
    if (next == 0 || (unsigned)state >= MQIM_SESSION_STATE_COUNT ||
        (unsigned)event >= MQIM_SESSION_EVENT_COUNT) {
        return MQIM_BAD_PARAMETER;
    }
    n = transitions[state][event];
    if (n == MQIM_SESSION_STATE_COUNT) {
        return MQIM_BAD_PARAMETER;
    }
    *next = (mqim_session_state_t)n;
    return MQIM_OK;
}

/* Every state change goes through the table; an impossible one is a bug
 * here, so it stops the session rather than continue in a wrong state. */
static void transition(mqim_session_t *s, mqim_session_event_t ev)
{
    mqim_session_state_t next = MQIM_SESSION_STOPPED;
    if (mqim_session_next_state(s->state, ev, &next) != MQIM_OK) {
        s->last_error = MQIM_INTERNAL;
        next = MQIM_SESSION_STOPPED;
    }
    s->state = next;
}

static uint32_t now(const mqim_session_t *s)
{
    return s->cfg.clock(s->cfg.clock_ctx);
}

static uint32_t since(uint32_t t, uint32_t now_ms)
{
    return (uint32_t)(now_ms - t); /* unsigned difference: immune to the 2^32 wrap */
}

mqim_status_t mqim_session_init(mqim_session_t *s, const mqim_session_config_t *cfg)
{
    if (s == 0 || cfg == 0 || cfg->transport == 0 || cfg->transport->send == 0 ||
        cfg->transport->recv == 0 || cfg->transport->open == 0 || cfg->transport->close == 0 ||
        cfg->clock == 0 || cfg->entropy == 0) {
        return MQIM_BAD_PARAMETER;
    }
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->state = MQIM_SESSION_STOPPED;
    s->next_sub_id = 1;
    return mqim_inflight_init(&s->inflight, s->out, MQIM_CFG_INFLIGHT_MAX, s->in_qos2,
                              MQIM_CFG_INBOUND_QOS2_MAX);
}

mqim_status_t mqim_session_start(mqim_session_t *s)
{
    if (s == 0 || s->state != MQIM_SESSION_STOPPED) {
        return MQIM_BAD_PARAMETER;
    }
    transition(s, MQIM_SESSION_EV_START);
    s->retry_at = now(s); /* the first attempt is immediate */
    s->backoff_ms = 0;
    return MQIM_OK;
}

/* Exponential backoff with "equal jitter": half the delay fixed, half random,
 * so a fleet that lost the broker together does not come back together. */
static void schedule_retry(mqim_session_t *s)
{
    uint8_t r[4] = { 0, 0, 0, 0 };
    uint32_t rnd, half;
    if (s->backoff_ms == 0u) {
        s->backoff_ms = MQIM_CFG_BACKOFF_MIN_MS;
    } else {
        s->backoff_ms = s->backoff_ms >= MQIM_CFG_BACKOFF_MAX_MS / 2u ? MQIM_CFG_BACKOFF_MAX_MS
                                                                      : s->backoff_ms * 2u;
    }
    (void)s->cfg.entropy(s->cfg.entropy_ctx, r, sizeof(r));
    rnd = (uint32_t)r[0] | ((uint32_t)r[1] << 8) | ((uint32_t)r[2] << 16) | ((uint32_t)r[3] << 24);
    half = s->backoff_ms / 2u;
    s->retry_at = now(s) + half + rnd % (s->backoff_ms - half + 1u);
}

/* An attempt or a link failed: remember why, back off, tell the application. */
static void failed(mqim_session_t *s, mqim_session_event_t ev, mqim_status_t reason)
{
    s->last_error = reason;
    s->failures++;
    transition(s, ev);
    schedule_retry(s);
    if (s->cfg.cb.on_disconnected != 0) {
        s->cfg.cb.on_disconnected(s->cfg.cb.ctx, reason);
    }
}

static void drop_link(mqim_session_t *s, mqim_session_event_t ev, mqim_status_t reason)
{
    s->cfg.transport->close(s->cfg.transport_ctx);
    s->rx_len = 0;
    s->rx_discard = 0;
    s->ping_outstanding = false;
    failed(s, ev, reason);
}

/* The transport's open failure as a status (ports.h): the three reasons a
 * transport can give, anything else is an unreachable broker. */
static mqim_status_t open_failure(int32_t rc)
{
    if (rc == -(int32_t)MQIM_TLS_VERIFY_FAILED || rc == -(int32_t)MQIM_TLS_HANDSHAKE_FAILED) {
        return (mqim_status_t)-rc;
    }
    return MQIM_BROKER_UNREACHABLE;
}

/* The five MQTT 3.1.1 refusals one to one [MQTT-3.2.2.3]: status.h numbers
 * them 130..134 in the order of the return codes 1..5. The decoder refuses
 * any other code; should one pass, it is still a refusal. */
static mqim_status_t connack_status(uint8_t code)
{
    return code >= MQIM_MQTT_CONNACK_BAD_PROTOCOL && code <= MQIM_MQTT_CONNACK_NOT_AUTHORIZED
               ? (mqim_status_t)(MQIM_CONNACK_PROTOCOL_VERSION - 1 + code)
                                    : MQIM_CONNACK_REFUSED;
}

static mqim_status_t send_all(mqim_session_t *s, const uint8_t *buf, size_t len)
{
    size_t sent = 0;
    unsigned zeros = 0;
    while (sent < len) {
        int32_t n = s->cfg.transport->send(s->cfg.transport_ctx, buf + sent, len - sent,
                                           SEND_TIMEOUT_MS);
        if (n < 0 || (size_t)n > len - sent) {
            return MQIM_TRANSPORT_ERROR;
        }
        if (n == 0) {
            if (++zeros >= SEND_ZERO_LIMIT) {
                return MQIM_TRANSPORT_ERROR;
            }
            continue;
        }
        zeros = 0;
        sent += (size_t)n;
    }
    s->last_tx = now(s);
    return MQIM_OK;
}

/* Send len bytes of tx, then tail_len bytes of tail (a publish's payload
 * from where it lies: never copied into tx), and on failure take the link
 * down; the caller returns the status. */
static mqim_status_t send_or_drop(mqim_session_t *s, size_t len, const uint8_t *tail, size_t tail_len)
{
    mqim_status_t st = send_all(s, s->tx, len);
    if (st == MQIM_OK) {
        st = send_all(s, tail, tail_len);
    }
    if (st != MQIM_OK) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, st);
    }
    return st;
}

static mqim_status_t send_ack(mqim_session_t *s, mqim_mqtt_type_t type, uint16_t id)
{
    size_t len = 0;
    mqim_status_t st = mqim_mqtt_encode_ack(type, id, s->tx, sizeof(s->tx), &len);
    return st == MQIM_OK ? send_or_drop(s, len, 0, 0) : st;
}

static void try_connect(mqim_session_t *s)
{
    size_t len = 0;
    mqim_status_t st;
    int32_t rc = s->cfg.transport->open(s->cfg.transport_ctx, MQIM_CFG_OPEN_TIMEOUT_MS);
    if (rc < 0) {
        failed(s, MQIM_SESSION_EV_OPEN_FAILED, open_failure(rc));
        return;
    }
    st = mqim_mqtt_encode_connect(&s->cfg.connect, s->tx, sizeof(s->tx), &len);
    if (st == MQIM_OK) {
        st = send_all(s, s->tx, len);
    }
    transition(s, MQIM_SESSION_EV_RETRY_DUE);
    s->connect_sent_at = now(s);
    s->rx_len = 0;
    s->rx_discard = 0;
    if (st != MQIM_OK) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, st);
    }
}

/* After CONNACK with a session: resend what is in flight, in send order,
 * with DUP, keeping the packet ids [MQTT-4.4.0-1]. */
static mqim_status_t resend_inflight(mqim_session_t *s)
{
    mqim_out_entry_t e;
    uint32_t after = 0;
    mqim_status_t st = MQIM_OK;
    while (st == MQIM_OK && mqim_inflight_next_resend(&s->inflight, after, &e)) {
        after = e.seq;
        if (e.state == MQIM_OUT_WAIT_PUBCOMP) {
            st = send_ack(s, MQIM_MQTT_PUBREL, e.packet_id);
        } else {
            mqim_mqtt_publish_t pub;
            size_t len = 0;
            memset(&pub, 0, sizeof(pub));
            if (s->cfg.cb.get_publish == 0 ||
                s->cfg.cb.get_publish(s->cfg.cb.ctx, e.outbox_key, &pub) != MQIM_OK) {
                continue; /* the application no longer has it: nothing to resend */
            }
            pub.packet_id = e.packet_id;
            pub.qos = e.state == MQIM_OUT_WAIT_PUBACK ? 1u : 2u;
            pub.dup = true;
            st = mqim_mqtt_encode_publish_head(&pub, s->tx, sizeof(s->tx), &len);
            if (st == MQIM_OK) {
                st = send_or_drop(s, len, pub.payload, pub.payload_len);
            }
        }
    }
    return st;
}

static mqim_status_t on_connack(mqim_session_t *s, const mqim_mqtt_packet_t *p)
{
    if (p->return_code != MQIM_MQTT_CONNACK_ACCEPTED) {
        mqim_status_t why = connack_status(p->return_code);
        drop_link(s, MQIM_SESSION_EV_CONNACK_REFUSED, why);
        return why;
    }
    transition(s, MQIM_SESSION_EV_CONNACK_OK);
    s->backoff_ms = 0;
    if (!p->session_present) {
        /* The broker has no session: nothing it half-received survives, the
         * application resends from its outbox. */
        mqim_inflight_clear_out(&s->inflight);
    } else if (resend_inflight(s) != MQIM_OK) {
        return s->last_error;
    }
    if (s->cfg.cb.on_connected != 0) {
        s->cfg.cb.on_connected(s->cfg.cb.ctx, p->session_present);
    }
    return MQIM_OK;
}

static mqim_status_t on_publish(mqim_session_t *s, const mqim_mqtt_packet_t *p)
{
    bool deliver = true;
    mqim_status_t st = MQIM_OK;
    if (p->publish.qos == 2u) {
        st = mqim_inflight_qos2_received(&s->inflight, p->publish.packet_id, &deliver);
        if (st == MQIM_INFLIGHT_FULL) {
            return MQIM_OK; /* unanswered: the broker sends it again on reconnect */
        }
    }
    if (deliver && s->cfg.cb.on_message != 0) {
        s->cfg.cb.on_message(s->cfg.cb.ctx, &p->publish);
    }
    if (p->publish.qos == 1u) {
        st = send_ack(s, MQIM_MQTT_PUBACK, p->publish.packet_id);
    } else if (p->publish.qos == 2u) {
        st = send_ack(s, MQIM_MQTT_PUBREC, p->publish.packet_id);
    }
    return st;
}

static mqim_status_t on_ack(mqim_session_t *s, const mqim_mqtt_packet_t *p)
{
    uint32_t key = 0;
    bool done = false;
    mqim_status_t st = mqim_inflight_ack(&s->inflight, p->type, p->packet_id, &key, &done);
    if (st != MQIM_OK) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, st); /* the broker broke the protocol */
        return st;
    }
    if (p->type == MQIM_MQTT_PUBREC) {
        st = send_ack(s, MQIM_MQTT_PUBREL, p->packet_id);
    }
    if (st == MQIM_OK && done && s->cfg.cb.on_published != 0) {
        s->cfg.cb.on_published(s->cfg.cb.ctx, key);
    }
    return st;
}

static mqim_status_t handle(mqim_session_t *s, const mqim_mqtt_packet_t *p)
{
    mqim_status_t st = MQIM_OK;
    if (s->state == MQIM_SESSION_CONNECTING && p->type != MQIM_MQTT_CONNACK) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, MQIM_MQTT_PROTOCOL); /* CONNACK must come first */
        return MQIM_MQTT_PROTOCOL;
    }
    switch (p->type) {
    case MQIM_MQTT_CONNACK:
        if (s->state != MQIM_SESSION_CONNECTING) {
            drop_link(s, MQIM_SESSION_EV_LINK_LOST, MQIM_MQTT_PROTOCOL);
            return MQIM_MQTT_PROTOCOL;
        }
        st = on_connack(s, p);
        break;
    case MQIM_MQTT_PUBLISH:
        st = on_publish(s, p);
        break;
    case MQIM_MQTT_PUBACK:
    case MQIM_MQTT_PUBREC:
    case MQIM_MQTT_PUBCOMP:
        st = on_ack(s, p);
        break;
    case MQIM_MQTT_PUBREL:
        mqim_inflight_qos2_released(&s->inflight, p->packet_id);
        st = send_ack(s, MQIM_MQTT_PUBCOMP, p->packet_id);
        break;
    case MQIM_MQTT_PINGRESP:
        s->ping_outstanding = false;
        break;
    default:
        break; /* SUBACK, UNSUBACK: nothing to track at this layer */
    }
    return st;
}

/* Decode and handle every whole packet in the receive buffer.
 *
 * A PUBLISH larger than the buffer does not cost the link (the broker would
 * send it again on every reconnect, and the device would never get past
 * it): once the buffer is full of its head, the head is handed up with
 * publish.truncated set and acknowledged as usual, and the rest of the
 * packet is skipped as it arrives. Any other oversized packet is fatal. */
static mqim_status_t drain_rx(mqim_session_t *s)
{
    size_t off = 0;
    mqim_status_t st = MQIM_OK;
    while (st == MQIM_OK && s->state >= MQIM_SESSION_CONNECTING) {
        size_t total = 0;
        mqim_mqtt_packet_t pkt;
        if (s->rx_discard > 0u) {
            size_t n = s->rx_len - off < s->rx_discard ? s->rx_len - off : s->rx_discard;
            off += n;
            s->rx_discard -= n;
            if (s->rx_discard > 0u) {
                break;
            }
            continue;
        }
        st = mqim_mqtt_frame(s->rx + off, s->rx_len - off, sizeof(s->rx), &total);
        if (st == MQIM_MQTT_NEED_MORE) {
            st = MQIM_OK;
            break;
        }
        if (st == MQIM_MQTT_TOO_LARGE && s->state == MQIM_SESSION_CONNECTED &&
            (s->rx[off] >> 4) == (uint8_t)MQIM_MQTT_PUBLISH) {
            if (off > 0u || s->rx_len < sizeof(s->rx)) {
                st = MQIM_OK; /* move it to the front and fill the buffer first */
                break;
            }
            st = mqim_mqtt_decode_publish_head(s->rx, s->rx_len, &pkt);
            if (st == MQIM_OK) {
                off = s->rx_len;
                s->rx_discard = pkt.length - s->rx_len;
                st = handle(s, &pkt);
                continue;
            }
        }
        if (st == MQIM_OK) {
            st = mqim_mqtt_decode(s->rx + off, total, &pkt);
        }
        if (st != MQIM_OK) {
            drop_link(s, MQIM_SESSION_EV_LINK_LOST, st); /* malformed or too large: the stream is lost */
            return st;
        }
        off += total;
        st = handle(s, &pkt);
    }
    if (s->state >= MQIM_SESSION_CONNECTING && off > 0u) {
        memmove(s->rx, s->rx + off, s->rx_len - off);
        s->rx_len -= off;
    }
    return st;
}

static mqim_status_t keepalive(mqim_session_t *s, uint32_t t)
{
    size_t len = 0;
    uint32_t ka_ms = (uint32_t)s->cfg.connect.keep_alive_s * 1000u;
    if (s->ping_outstanding && since(s->ping_sent_at, t) > MQIM_CFG_PINGRESP_TIMEOUT_MS) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, MQIM_KEEPALIVE_LOST); /* a dead link */
        return MQIM_KEEPALIVE_LOST;
    }
    if (ka_ms > 0u && !s->ping_outstanding && since(s->last_tx, t) >= ka_ms) {
        (void)mqim_mqtt_encode_empty(MQIM_MQTT_PINGREQ, s->tx, sizeof(s->tx), &len);
        s->ping_outstanding = true;
        s->ping_sent_at = t;
        return send_or_drop(s, len, 0, 0);
    }
    return MQIM_OK;
}

/* ms from now_ms until at; 0 when due. */
static uint32_t until(uint32_t at, uint32_t now_ms)
{
    return (int32_t)(at - now_ms) > 0 ? at - now_ms : 0u;
}

static uint32_t deadline_at(const mqim_session_t *s, uint32_t t)
{
    uint32_t ka_ms = (uint32_t)s->cfg.connect.keep_alive_s * 1000u;
    switch (s->state) {
    case MQIM_SESSION_BACKOFF:
        return until(s->retry_at, t);
    case MQIM_SESSION_CONNECTING:
        return until(s->connect_sent_at + CONNACK_TIMEOUT_MS + 1u, t);
    case MQIM_SESSION_CONNECTED:
        if (s->ping_outstanding) {
            return until(s->ping_sent_at + MQIM_CFG_PINGRESP_TIMEOUT_MS + 1u, t);
        }
        return ka_ms > 0u ? until(s->last_tx + ka_ms, t) : MQIM_NO_DEADLINE;
    default:
        return MQIM_NO_DEADLINE;
    }
}

uint32_t mqim_session_next_deadline(const mqim_session_t *s)
{
    return s != 0 ? deadline_at(s, now(s)) : MQIM_NO_DEADLINE;
}

mqim_status_t mqim_session_poll(mqim_session_t *s, uint32_t timeout_ms)
{
    uint32_t t, wait;
    int32_t n;
    mqim_status_t st = MQIM_OK;
    if (s == 0) {
        return MQIM_BAD_PARAMETER;
    }
    t = now(s);
    if (s->state == MQIM_SESSION_STOPPED) {
        return MQIM_OK;
    }
    if (s->state == MQIM_SESSION_BACKOFF) {
        wait = until(s->retry_at, t);
        if (wait > 0u) {
            /* Nothing can arrive without a connection: sleep (the core may
             * too) until the retry or the caller's timeout, whichever first. */
            if (s->cfg.sleep == 0 || timeout_ms == 0u) {
                return MQIM_OK;
            }
            s->cfg.sleep(s->cfg.sleep_ctx, wait < timeout_ms ? wait : timeout_ms);
            if (until(s->retry_at, now(s)) > 0u) {
                return MQIM_OK;
            }
        }
        try_connect(s);
        return s->state == MQIM_SESSION_CONNECTING ? MQIM_OK : s->last_error;
    }
    if (s->state == MQIM_SESSION_CONNECTING && since(s->connect_sent_at, t) > CONNACK_TIMEOUT_MS) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, MQIM_TIMEOUT);
        return MQIM_TIMEOUT;
    }
    if (s->state == MQIM_SESSION_CONNECTED) {
        st = keepalive(s, t);
        if (st != MQIM_OK) {
            return st;
        }
    }
    /* Wait for input no longer than the next timer of our own. */
    wait = deadline_at(s, t);
    n = s->cfg.transport->recv(s->cfg.transport_ctx, s->rx + s->rx_len, sizeof(s->rx) - s->rx_len,
                               wait < timeout_ms ? wait : timeout_ms);
    if (n < 0 || (size_t)n > sizeof(s->rx) - s->rx_len) {
        drop_link(s, MQIM_SESSION_EV_LINK_LOST, MQIM_TRANSPORT_ERROR);
        return MQIM_TRANSPORT_ERROR;
    }
    s->rx_len += (size_t)n;
    return n > 0 ? drain_rx(s) : MQIM_OK;
}

mqim_status_t mqim_session_publish(mqim_session_t *s, mqim_str_t topic, const uint8_t *payload,
                                   size_t len, uint8_t qos, bool retain, uint32_t outbox_key)
{
    mqim_mqtt_publish_t pub = { topic, payload, len, 1u, qos, retain, false, false, len };
    size_t need = 0;
    mqim_status_t st;
    if (s == 0 || s->state != MQIM_SESSION_CONNECTED || qos > 2u) {
        return MQIM_BAD_PARAMETER;
    }
    /* Check it encodes, and the whole packet is within the transmit size,
     * before taking an in-flight entry (the id does not change the size). */
    st = mqim_mqtt_encode_publish(&pub, 0, 0, &need);
    if (st == MQIM_BUFFER_TOO_SMALL && need <= MQIM_CFG_TX_BUFFER_SIZE) {
        st = mqim_mqtt_encode_publish_head(&pub, s->tx, sizeof(s->tx), &need);
    }
    if (st == MQIM_OK && qos > 0u) {
        st = mqim_inflight_add(&s->inflight, qos, outbox_key, &pub.packet_id);
        if (st == MQIM_OK) {
            st = mqim_mqtt_encode_publish_head(&pub, s->tx, sizeof(s->tx), &need);
        }
    }
    return st == MQIM_OK ? send_or_drop(s, need, payload, len) : st;
}

mqim_status_t mqim_session_subscribe(mqim_session_t *s, mqim_str_t filter, uint8_t qos)
{
    size_t len = 0;
    mqim_status_t st;
    if (s == 0 || s->state != MQIM_SESSION_CONNECTED) {
        return MQIM_BAD_PARAMETER;
    }
    /* A packet id no publish in flight uses. */
    while (s->next_sub_id == 0u || mqim_inflight_id_in_use(&s->inflight, s->next_sub_id)) {
        s->next_sub_id++;
    }
    st = mqim_mqtt_encode_subscribe(s->next_sub_id, &filter, &qos, 1u, s->tx, sizeof(s->tx), &len);
    s->next_sub_id++;
    return st == MQIM_OK ? send_or_drop(s, len, 0, 0) : st;
}

void mqim_session_stop(mqim_session_t *s)
{
    size_t len = 0;
    if (s == 0 || s->state == MQIM_SESSION_STOPPED) {
        return;
    }
    if (s->state == MQIM_SESSION_CONNECTED &&
        mqim_mqtt_encode_empty(MQIM_MQTT_DISCONNECT, s->tx, sizeof(s->tx), &len) == MQIM_OK) {
        (void)send_all(s, s->tx, len); /* best effort: we are leaving either way */
    }
    if (s->state == MQIM_SESSION_CONNECTED || s->state == MQIM_SESSION_CONNECTING) {
        s->cfg.transport->close(s->cfg.transport_ctx);
    }
    s->rx_len = 0;
    s->rx_discard = 0;
    transition(s, MQIM_SESSION_EV_STOP);
}

mqim_session_state_t mqim_session_state(const mqim_session_t *s)
{
    return s != 0 ? s->state : MQIM_SESSION_STOPPED;
}
