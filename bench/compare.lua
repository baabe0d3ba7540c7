-- wrk script of bench/compare.py: every request is one line of the file named by BODIES
-- ("<bearer token or ->\t<JSON body>"), so ids rotate the way the file draws them.
-- BODIES_ONCE=1 (the cold mode): each thread sends its own slice of the file once, then stops
-- (a few connections may repeat a line while the last answers arrive).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  lines = {}
  for line in io.lines(os.getenv("BODIES")) do
    local tab = line:find("\t", 1, true)
    local token = line:sub(1, tab - 1)
    local headers = { ["Content-Type"] = "application/json" }
    if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
    table.insert(lines, wrk.format("POST", nil, headers, line:sub(tab + 1)))
  end
  once = os.getenv("BODIES_ONCE") == "1"
  local total = tonumber(os.getenv("WRK_THREADS") or "1")
  if once then
    -- this thread's slice: every total-th line from its index
    local mine = {}
    for i = index + 1, #lines, total do table.insert(mine, lines[i]) end
    lines = mine
    position = 0
  else
    math.randomseed(os.time() + index * 7919)
    position = math.random(#lines) - 1
  end
  answered = 0
end

function request()
  position = position % #lines + 1
  return lines[position]
end

function response(status, headers, body)
  answered = answered + 1
  if once and answered == #lines then
    -- tell bench/compare.py this thread is done: it interrupts wrk once every thread is
    local marker = io.open(os.getenv("DONE_DIR") .. "/" .. index, "w")
    marker:close()
    wrk.thread:stop()
  end
end
