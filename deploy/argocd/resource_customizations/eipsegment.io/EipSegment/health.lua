-- Argo CD health of an EipSegment, from the conditions the operator writes.
local hs = {}

local function condition(kind)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local ready = condition("Ready")
local synced = condition("Synced")

-- A person must act: a blocked release, a terminal error, a segment gone or never found.
if synced ~= nil and synced.status == "False" and (synced.reason == "Blocked" or synced.reason == "Terminal") then
  hs.status = "Degraded"
  hs.message = synced.message
  return hs
end
if ready ~= nil and ready.status == "False" and (ready.reason == "SegmentMissing" or ready.reason == "AdoptionTargetNotFound") then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  if obj.status ~= nil and obj.status.segmentInstanceId ~= nil then
    hs.message = "Releasing segment " .. obj.status.segmentInstanceId .. "; waiting for the cloud to confirm"
  else
    hs.message = "Deleting"
  end
  return hs
end

if obj.status == nil or obj.status.observedGeneration == nil
    or (obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on the latest spec"
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

-- Passing errors (throttling, 5xx) are retried: not a reason to page anyone.
if synced ~= nil and synced.status == "False" then
  hs.status = "Progressing"
  hs.message = synced.message
  return hs
end

hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "Allocating"
end
return hs
