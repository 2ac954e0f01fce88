//! Namespace finalisation: a terminating namespace deletes its contents and disappears
//! once it is empty and has no finalizers.

use super::*;
use crate::errors::ApiResult;
use crate::resources::GroupResource;

impl Store {
    pub(super) fn delete_namespace_contents(&self, st: &mut State, ns: &str) -> ApiResult<()> {
        let mut keys = Vec::new();
        for (gr, table) in &st.tables {
            if !st.types.get(gr).is_some_and(|t| t.namespaced) {
                continue;
            }
            for ((n, name), obj) in table
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
            {
                if obj.pointer("/metadata/deletionTimestamp").is_none() {
                    keys.push((gr.clone(), n.clone(), name.clone()));
                }
            }
        }
        for (gr, n, name) in keys {
            match self.delete_locked(st, &gr, Some(&n), &name, &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        self.maybe_finish_namespace(st, ns)
    }
    pub(super) fn maybe_finish_namespace(&self, st: &mut State, ns: &str) -> ApiResult<()> {
        let nsgr = GroupResource::new("", "namespaces");
        let Some(nsobj) = st
            .tables
            .get(&nsgr)
            .and_then(|t| t.objects.get(&(String::new(), ns.to_string())))
            .cloned()
        else {
            return Ok(());
        };
        if nsobj.pointer("/metadata/deletionTimestamp").is_none() || !finalizers(&nsobj).is_empty()
        {
            return Ok(());
        }
        let empty = st.tables.iter().all(|(gr, t)| {
            !st.types.get(gr).is_some_and(|ty| ty.namespaced)
                || t.objects
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_none_or(|((n, _), _)| n != ns)
        });
        if empty {
            let key = ObjKey {
                gr: nsgr,
                namespace: String::new(),
                name: ns.to_string(),
            };
            self.remove_locked(st, &key, None, Propagation::Background)?;
        }
        Ok(())
    }
}
