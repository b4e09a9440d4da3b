-- Argo CD health check for eipsegment.io/EipSegment (eipsegment-operator).
--
-- Reads what the operator writes: the Ready condition (the segment is allocated or adopted and
-- recorded; when not, its reason says why), the Synced condition (whether the last cloud call
-- succeeded; when not, its reason is the error class Transient, Blocked or Terminal),
-- status.cloudStatus and status.observedGeneration.
--   Degraded     a person must act: a Blocked or Terminal error (also during a release; among them
--                credentials of another account, AccountMismatch, and a credentials Secret being
--                deleted, SecretTerminating), a segment released outside the operator
--                (SegmentMissing), an adoption target that does not exist (AdoptionTargetNotFound),
--                a segment another object holds (SegmentInUse), or a deletion that cannot prove the
--                segment gone because its account was never recorded (AccountUnknown), or a release
--                the cloud refused (ReleaseBlocked, ReleaseFailed) until it is retried and accepted.
--   Progressing  allocating (also while an accepted segment is not yet visible), queued behind the
--                client-side rate limit, a cloud status the operator does not know, not yet
--                reconciled, retrying a transient error (throttling, 5xx), or deleting while the
--                release is in flight.
--   Healthy      Ready=True (Allocated, Adopted) and not being deleted.
-- A deleting object's health is given as deletionMessage, which Argo CD 3.6 and later need to show it.
-- Plain Lua 5.1, as Argo CD runs it under gopher-lua. It uses no string or math library, so it works
-- from argocd-cm without resource.customizations.useOpenLibs.

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function text(value)
  return value ~= nil and value ~= ""
end

-- Degraded, with the condition's message, or `fallback` when it has none.
local function degraded(c, fallback)
  if text(c.message) then
    return { status = "Degraded", message = c.message }
  end
  return { status = "Degraded", message = fallback }
end

local metadata = obj.metadata or {}
local spec = obj.spec or {}
local status = obj.status or {}
local ready = condition(status.conditions, "Ready")
local synced = condition(status.conditions, "Synced")
local segment = status.segmentInstanceId or spec.segmentInstanceId
local deleting = metadata.deletionTimestamp ~= nil

-- The health of the object as it stands; a deleting object's is turned into a deletion message below.
local function assess()
  local hs = {}

  -- A person must act: the operator keeps retrying, but the cause is outside its reach.
  if synced ~= nil and synced.status == "False" and (synced.reason == "Blocked" or synced.reason == "Terminal") then
    return degraded(synced, "the last cloud call failed (" .. synced.reason .. ")")
  end

  -- Deleting: the finalizer holds the object until the cloud confirms the release.
  if deleting then
    local policy = spec.deletionPolicy
    if policy == nil then
      -- The operator's default: Retain for adopted segments, Delete for allocated ones.
      if spec.segmentInstanceId ~= nil then
        policy = "Retain"
      else
        policy = "Delete"
      end
    end
    -- Not visible to the credentials in force, and no record of the account it lives in: the operator
    -- does not take it as released. Retain (or the credentials of its account) lets the object go.
    -- A release the cloud refused for a cause a person must remove (ReleaseBlocked) or for the
    -- configuration or credentials (ReleaseFailed) stays Degraded between retries, while looks succeed.
    if policy ~= "Retain" and ready ~= nil and ready.status == "False" and (ready.reason == "AccountUnknown"
        or ready.reason == "ReleaseBlocked" or ready.reason == "ReleaseFailed") then
      return degraded(ready, "deleting; the release cannot go on (" .. ready.reason .. ")")
    end
    hs.status = "Progressing"
    if policy == "Retain" then
      if segment ~= nil then
        hs.message = "deleting; deletion policy Retain keeps segment " .. segment .. " in the cloud"
      else
        hs.message = "deleting; deletion policy Retain: nothing to release"
      end
    elseif segment == nil then
      if status.allocationRequestedAt ~= nil then
        hs.message = "deleting; looking up the segment of the pending allocation to release it"
      else
        hs.message = "deleting; no segment was allocated: nothing to release"
      end
    elseif status.cloudStatus == "Missing" or status.cloudStatus == "Released"
        or (ready ~= nil and ready.reason == "SegmentMissing") then
      hs.message = "deleting; segment " .. segment .. " is already gone from the cloud, waiting for the operator to confirm"
    elseif ready ~= nil and ready.status == "False" and text(ready.message) and (ready.reason == "ReleaseQueued"
        or ready.reason == "Allocating" or (ready.reason == status.cloudStatus and ready.reason ~= "Releasing")) then
      -- The release waits: behind the client-side rate limit, for an accepted segment to become
      -- visible, or for a cloud status (Allocating, or one the operator does not know) to settle.
      hs.message = "deleting; " .. ready.message
    elseif status.releaseRequestedAt == nil and status.cloudStatus ~= "Releasing" then
      hs.message = "deleting; waiting for the operator to release segment " .. segment
    else
      hs.message = "releasing segment " .. segment .. "; waiting for the cloud to confirm"
    end
    -- A passing error (throttling, 5xx) is retried with backoff: say so, but stay Progressing.
    if policy ~= "Retain" and synced ~= nil and synced.status == "False" and text(synced.message) then
      hs.message = hs.message .. " (retrying: " .. synced.message .. ")"
    end
    return hs
  end

  -- A segment gone out of band is not re-created; an adoption target that does not exist never appears;
  -- a segment another object holds is not acted on; the tenancy policy refuses what the spec asks.
  -- Checked before the generation: a refused object's status is not that of its current spec.
  if ready ~= nil and ready.status == "False" and (ready.reason == "SegmentMissing"
      or ready.reason == "AdoptionTargetNotFound" or ready.reason == "SegmentInUse"
      or ready.reason == "PolicyRefused") then
    hs.status = "Degraded"
    hs.message = ready.message
    return hs
  end

  -- The operator has not yet acted on this object, or on its latest spec.
  if status.observedGeneration == nil then
    hs.status = "Progressing"
    hs.message = "waiting for the operator to reconcile this EipSegment"
    return hs
  end
  if metadata.generation ~= nil and status.observedGeneration < metadata.generation then
    hs.status = "Progressing"
    hs.message = "waiting for the operator to observe generation " .. metadata.generation
        .. " (observed: " .. status.observedGeneration .. ")"
    return hs
  end

  -- Allocated or adopted, and recorded. A failed look at a ready segment (throttling) does not flap it.
  if ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
    hs.message = ready.message
    return hs
  end

  hs.status = "Progressing"
  if synced ~= nil and synced.status == "False" and text(synced.message) then
    -- Transient: retried with backoff, not a reason to page anyone.
    hs.message = synced.message
  elseif status.cloudStatus == "Allocating" and segment ~= nil then
    -- The cloud shows the segment and says Allocating (the Ready message is "segment ... is Allocating").
    hs.message = "segment " .. segment .. " is being allocated"
  elseif ready ~= nil and text(ready.message) then
    hs.message = ready.message
  elseif status.allocationRequestedAt ~= nil then
    hs.message = "allocation requested; waiting for the cloud to return the segment"
  elseif spec.segmentInstanceId ~= nil then
    hs.message = "waiting for the operator to adopt segment " .. spec.segmentInstanceId
  else
    hs.message = "waiting for the operator to allocate a segment"
  end
  return hs
end

-- Argo CD takes a deleting object's health from a custom check only when the check sets
-- deletionMessage (it shows it as the message); otherwise it shows "Progressing: Pending deletion;
-- blocked by finalizers" whatever the check says, and a release that needs a person would look
-- like one in flight.
local hs = assess()
if deleting then
  hs.deletionMessage = hs.message
  hs.message = nil
end
return hs
