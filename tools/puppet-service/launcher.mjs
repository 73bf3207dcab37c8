// A real Wechaty puppet-service gRPC server (wechaty-puppet-service) with the mock puppet
// (wechaty-puppet-mock) behind it, one server per token, plus a small HTTP control API that
// tests and the benchmark use to play the phone and the WeCom servers: make contacts and rooms,
// show a QR code, log in and out, send inbound messages, slow down or fail sends, and count what
// the provider received.
//
//   node launcher.mjs --server insecure_a@8621 [--server insecure_b@8622 ...] [--control-port 0]
//                     [--exit-with-stdin]
//
// Prints one line of JSON when every server listens:
//   {"ready": true, "control_port": 40123, "servers": [{"token": "...", "port": 8621}], "ca": "..."}
// The gRPC servers serve TLS with the Wechaty root CA shipped in wechaty-puppet-service (server
// name "insecure") even for tokens starting with insecure_; "ca" is that certificate.
import http from 'node:http'
import { PuppetServer } from 'wechaty-puppet-service'
import { PuppetMock, mock } from 'wechaty-puppet-mock'
import { FileBox } from 'file-box'
// Not exported by the package's entry point: imported by path (pinned by the lockfile).
import { TLS_CA_CERT } from './node_modules/wechaty-puppet-service/dist/esm/src/auth/ca.js'

const args = process.argv.slice(2)
const specs = []
let controlPort = 0
let exitWithStdin = false
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--server') {
    const [token, port] = args[++i].split('@')
    specs.push({ token, port: Number(port) })
  } else if (args[i] === '--exit-with-stdin') {
    // tests: the launcher goes when its parent does (stdin is the parent's pipe)
    exitWithStdin = true
  } else if (args[i] === '--control-port') {
    controlPort = Number(args[++i])
  } else {
    console.error(`unknown argument: ${args[i]}`)
    process.exit(2)
  }
}
if (!specs.length) {
  console.error('usage: launcher.mjs --server TOKEN@PORT [...] [--control-port N]')
  process.exit(2)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// The send methods of the puppet, wrapped: every call the server receives is recorded (what the
// phone would show), then the configured fault applies.
const SEND_METHODS = [
  'messageSendText', 'messageSendFile', 'messageSendContact', 'messageSendUrl',
  'messageSendLocation', 'messageSendMiniProgram',
]

function makeAccount (spec) {
  const mocker = new mock.Mocker()
  const puppet = new PuppetMock({ mocker })
  const state = {
    spec, mocker, puppet, received: [], server: null,
    faults: { sendDelayMs: 0, failNext: 0, failMessage: 'mock failure', hangNext: 0, hangMs: 0 },
  }
  for (const name of SEND_METHODS) {
    const original = puppet[name].bind(puppet)
    puppet[name] = async (conversationId, payload, ...rest) => {
      const f = state.faults
      if (f.failNext > 0) {
        f.failNext--
        throw new Error(f.failMessage)
      }
      if (f.sendDelayMs) await sleep(f.sendDelayMs)
      const result = await original(conversationId, payload, ...rest)
      state.received.push({ method: name, conversation_id: conversationId, payload: describe(payload), at_ms: Date.now() })
      if (f.hangNext > 0) {
        // The send happened; its answer is late (a timeout after the call left: ambiguous).
        f.hangNext--
        await sleep(f.hangMs)
      }
      return result
    }
  }
  return state
}

function describe (payload) {
  if (payload === undefined || payload === null) return null
  if (typeof payload === 'string') return payload
  if (typeof payload.toJSON === 'function') {
    try { return payload.toJSON() } catch { return String(payload) }
  }
  return payload
}

const accounts = specs.map(makeAccount)
const byToken = new Map(accounts.map((a) => [a.spec.token, a]))

function pick (body) {
  const acc = body.token ? byToken.get(body.token) : accounts[0]
  if (!acc) throw Object.assign(new Error(`unknown token ${body.token}`), { status: 404 })
  return acc
}

const handlers = {
  // Contacts and rooms, and the account that will log in: {self_name?, contacts, rooms, members}
  'POST /setup': (acc, body) => {
    const m = acc.mocker
    const self = m.createContact({ name: body.self_name || 'bridge-self' })
    const contacts = m.createContacts(body.contacts ?? 5)
    const rooms = []
    for (let i = 0; i < (body.rooms ?? 1); i++) {
      const members = contacts.slice(0, Math.min(body.members ?? 3, contacts.length)).map((c) => c.id)
      rooms.push(m.createRoom({ topic: `room ${i + 1}`, memberIdList: [self.id, ...members], ownerId: self.id }))
    }
    acc.selfId = self.id
    return { self_id: self.id, contact_ids: contacts.map((c) => c.id), room_ids: rooms.map((r) => r.id) }
  },
  'POST /scan': (acc, body) => {
    acc.mocker.scan(body.qrcode || `https://login.weixin.qq.com/l/${Date.now()}`, body.status ?? 2)
    return { ok: true }
  },
  'POST /login': (acc, body) => {
    const id = body.contact_id || acc.selfId
    acc.mocker.login(acc.mocker.ContactMock.load(id))
    return { account_id: id }
  },
  'POST /logout': async (acc) => {
    await acc.puppet.logout()
    return { ok: true }
  },
  // An inbound message: {from, room_id?, text, count?, mentions?}, or a file:
  // {from, file_url | file_base64, file_name}
  'POST /inbound': (acc, body) => {
    const m = acc.mocker
    const from = m.ContactMock.load(body.from)
    const to = body.room_id ? m.RoomMock.load(body.room_id) : m.ContactMock.load(acc.selfId)
    if (body.file_url || body.file_base64) {
      const box = body.file_url
        ? FileBox.fromUrl(body.file_url, { name: body.file_name })
        : FileBox.fromBase64(body.file_base64, body.file_name)
      from.say(box).to(to)
      return { ok: true }
    }
    for (let i = 0; i < (body.count ?? 1); i++) {
      const text = (body.count ?? 1) > 1 ? `${body.text} #${i + 1}` : body.text
      from.say(text, (body.mentions || []).map((id) => m.ContactMock.load(id))).to(to)
    }
    return { ok: true }
  },
  // {send_delay_ms?, fail_next?, fail_message?, hang_next?, hang_ms?}
  'POST /faults': (acc, body) => {
    const f = acc.faults
    if ('send_delay_ms' in body) f.sendDelayMs = body.send_delay_ms
    if ('fail_next' in body) f.failNext = body.fail_next
    if ('fail_message' in body) f.failMessage = body.fail_message
    if ('hang_next' in body) f.hangNext = body.hang_next
    if ('hang_ms' in body) f.hangMs = body.hang_ms
    return { faults: f }
  },
  'POST /received': (acc) => ({ received: acc.received }),
  'POST /reset-received': (acc) => { acc.received = []; return { ok: true } },
}

const control = http.createServer(async (req, res) => {
  let raw = ''
  for await (const chunk of req) raw += chunk
  const answer = (status, obj) => {
    const body = JSON.stringify(obj)
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
    res.end(body)
  }
  const handler = handlers[`${req.method} ${req.url.split('?')[0]}`]
  if (!handler) return answer(404, { error: `no such control endpoint: ${req.method} ${req.url}` })
  try {
    const body = raw ? JSON.parse(raw) : {}
    answer(200, await handler(pick(body), body))
  } catch (err) {
    answer(err.status || 400, { error: String(err.message || err) })
  }
})

async function main () {
  for (const acc of accounts) {
    await acc.puppet.start()
    acc.server = new PuppetServer({ endpoint: `127.0.0.1:${acc.spec.port}`, puppet: acc.puppet, token: acc.spec.token })
    await acc.server.start()
  }
  await new Promise((resolve) => control.listen(controlPort, '127.0.0.1', resolve))
  process.stdout.write(JSON.stringify({
    ready: true,
    control_port: control.address().port,
    servers: accounts.map((a) => ({ token: a.spec.token, port: a.spec.port })),
    ca: TLS_CA_CERT,
  }) + '\n')
}

async function shutdown () {
  control.close()
  for (const acc of accounts) {
    try { await acc.server?.stop() } catch {}
    try { await acc.puppet.stop() } catch {}
  }
  process.exit(0)
}
if (exitWithStdin) {
  process.stdin.on('end', shutdown)
  process.stdin.resume()
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
